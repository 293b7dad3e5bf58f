"""What the format readers share: cutting located text into sections, one-line failure reasons."""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import IO, BinaryIO
from xml.etree import ElementTree

from runtime.index.formats.base import Section, SectionCutter, UnreadableFileError

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted OOXML and old .doc/.xls/.ppt files
MAX_XML_DEPTH = 2000  # open elements held at once; real documents nest a few dozen deep
MAX_HEADING_CHARS = 200  # of one heading in a location label, which every chunk under it stores


def heading_label(text: str) -> str:
    """``text`` as one step of a heading path: one line, at most :data:`MAX_HEADING_CHARS`."""
    words = " ".join(text.split())
    return words if len(words) <= MAX_HEADING_CHARS else words[:MAX_HEADING_CHARS - 1] + "…"


def located(text: str, location: str | None, max_chars: int, page: int | None = None) -> Iterator[Section]:
    """``text`` as sections of at most ``max_chars`` characters, all labelled ``location``."""
    cutter = SectionCutter(max_chars, page=page, lines=False)
    for section in [*cutter.add(text), *cutter.finish()]:
        yield replace(section, location=location)


def guarded(kind: str, handle: BinaryIO, sections: Callable[[], Iterator[Section]]) -> Iterator[Section]:
    """``sections()`` with any library error turned into one :class:`UnreadableFileError` line.

    Password-protected Office files are OLE containers, not zip files: they get their own reason.
    """
    with contextlib.suppress(OSError, ValueError):
        start = handle.tell()
        magic = handle.read(len(_OLE_MAGIC))
        handle.seek(start)
        if magic == _OLE_MAGIC:
            raise UnreadableFileError(f"the {kind} is encrypted with a password (or in the old binary format)")
    try:
        yield from sections()
    except UnreadableFileError:
        raise
    except zipfile.BadZipFile as exc:
        raise UnreadableFileError(f"not a readable {kind} (not a zip container: {exc})") from exc
    except Exception as exc:  # a corrupt file can make a parser fail in any way; one line, not a traceback
        message = " ".join(str(exc).split())[:200]
        raise UnreadableFileError(f"not a readable {kind} ({type(exc).__name__}: {message})") from exc


def xml_ends(stream: IO[bytes], keep_inside: frozenset[str] = frozenset()
             ) -> Iterator[tuple[ElementTree.Element, list[ElementTree.Element]]]:
    """Each element of the XML ``stream`` as it ends, with its open ancestors, in bounded memory.

    When an element ends, its children are folded into its ``text`` (its text, then each child's
    text and tail: what ``itertext`` gives), so only open elements and the ended children of
    open elements are held. After the caller has seen an element it is dropped, unless one of
    its ancestors has a tag in ``keep_inside`` (whose text will hold it). Nesting deeper than
    :data:`MAX_XML_DEPTH` raises :class:`UnreadableFileError`.
    """
    stack: list[ElementTree.Element] = []
    kept = 0  # open ancestors whose tag is in keep_inside
    for event, element in ElementTree.iterparse(stream, events=("start", "end")):
        if event == "start":
            stack.append(element)
            kept += element.tag in keep_inside
            if len(stack) > MAX_XML_DEPTH:
                raise UnreadableFileError(f"XML nested deeper than {MAX_XML_DEPTH} elements")
            continue
        stack.pop()
        kept -= element.tag in keep_inside
        if len(element):
            element.text = (element.text or "") + "".join((c.text or "") + (c.tail or "") for c in element)
            del element[:]
        yield element, stack
        if stack and not kept:
            stack[-1].remove(element)
