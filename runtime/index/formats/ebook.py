"""E-books (.epub) and OpenDocument text and presentations (.odt, .odp), read from their zip
container with the standard library: chapters in spine order, headings, slides.

Every member is read through :func:`~runtime.index.formats.archive.open_member` (its real
size counted as it streams) and parsed as it streams: XML with :func:`xml_ends`, chapters with
the HTML reader, so a member's size never becomes the memory held."""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from typing import IO, BinaryIO

from runtime.index.formats.archive import ArchiveBombError, Budget, checked_archive, open_member
from runtime.index.formats.base import Section, UnreadableFileError
from runtime.index.formats.common import guarded, heading_label, located, xml_ends
from runtime.index.formats.html import read_html_stream

_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF = "{http://www.idpf.org/2007/opf}"
_MANIFEST = "{urn:oasis:names:tc:opendocument:xmlns:manifest:1.0}"
_TITLE = re.compile(r"<(h[1-3]|title)\b[^>]*>(.*?)</\1>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")


def read_epub(handle: BinaryIO, encoding: str | None, max_chars: int) -> Iterator[Section]:
    """Each chapter of the spine as text, labelled with its first heading (or its title)."""
    return guarded(".epub file", handle, lambda: _epub(handle, max_chars))


def _epub(handle: BinaryIO, max_chars: int) -> Iterator[Section]:
    budget = Budget()
    with checked_archive(handle) as book:
        if any(info.flag_bits & 0x1 for info in book.infolist()):
            raise UnreadableFileError("the .epub file is encrypted")
        with open_member(book, "META-INF/container.xml", budget, "xml") as stream:
            opf_path = next((e.get("full-path", "") for e, _ in xml_ends(stream) if e.tag == f"{_CONTAINER}rootfile"),
                            None)
        if opf_path is None:
            raise UnreadableFileError("not a readable .epub file (no rootfile in META-INF/container.xml)")
        manifest: dict[str | None, str] = {}
        spine: list[str | None] = []
        with open_member(book, opf_path, budget, "xml") as stream:
            for element, _ in xml_ends(stream):
                if element.tag == f"{_OPF}item":
                    manifest[element.get("id")] = element.get("href", "")
                elif element.tag == f"{_OPF}itemref":
                    spine.append(element.get("idref"))
                if len(manifest) + len(spine) > 2 * budget.limits.members:  # not a list of what the zip holds
                    raise ArchiveBombError(f"archive bomb: {opf_path} lists more than {budget.limits.members} items")
        base = posixpath.dirname(opf_path)
        for number, idref in enumerate(spine, start=1):
            href = manifest.get(idref)
            if not href:
                continue
            name = posixpath.normpath(posixpath.join(base, href))
            with open_member(book, name, budget) as stream:
                title = _chapter_title(stream.read(65536)) or f"chapter {number}"
            with open_member(book, name, budget) as stream:  # a chapter is streamed, never held whole
                for section in read_html_stream(stream, "utf-8", max_chars):
                    yield replace(section, location=title, line_anchors=None)


def _chapter_title(data: bytes) -> str | None:
    head = data[:65536].decode("utf-8", "replace")
    found = {m.group(1).lower()[:2]: m.group(2) for m in reversed(list(_TITLE.finditer(head)))}
    for tag in ("h1", "h2", "h3", "ti"):
        if tag in found and (text := " ".join(_TAG.sub(" ", found[tag]).split())):
            return text
    return None


_ODF_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_ODF_DRAW = "{urn:oasis:names:tc:opendocument:xmlns:drawing:1.0}"


def read_odf(handle: BinaryIO, encoding: str | None, max_chars: int) -> Iterator[Section]:
    """An .odt's paragraphs under their heading path, or an .odp's slides as ``slide N``."""
    return guarded("OpenDocument file", handle, lambda: _odf(handle, max_chars))


def _odf(handle: BinaryIO, max_chars: int) -> Iterator[Section]:
    budget = Budget()
    with checked_archive(handle) as container:
        if any(info.flag_bits & 0x1 for info in container.infolist()) or _odf_encrypted(container, budget):
            raise UnreadableFileError("the OpenDocument file is encrypted with a password")
        with open_member(container, "content.xml", budget, "xml") as stream:
            yield from _odf_sections(stream, max_chars)


def _odf_encrypted(container: zipfile.ZipFile, budget: Budget) -> bool:
    if "META-INF/manifest.xml" not in container.namelist():
        return False
    with open_member(container, "META-INF/manifest.xml", budget, "xml") as stream:
        return any(e.tag == f"{_MANIFEST}encryption-data" for e, _ in xml_ends(stream))


def _odf_sections(stream: IO[bytes], max_chars: int) -> Iterator[Section]:
    """An .odp's slides (``draw:page``), else an .odt's paragraphs under their heading path,
    read as the XML streams (an element's text is complete when it ends)."""
    headings: list[tuple[int, str]] = []
    parts: list[str] = []
    held = 0  # characters in parts: text without headings is passed on every section's worth
    slides = 0
    slide: list[str] = []

    def flush() -> Iterator[Section]:
        nonlocal held
        if parts and not slides:
            yield from located("\n\n".join(parts), " > ".join(h for _, h in headings) or None, max_chars)
        parts.clear()
        held = 0

    for element, open_elements in xml_ends(stream, frozenset({f"{_ODF_TEXT}p", f"{_ODF_TEXT}h"})):
        if element.tag == f"{_ODF_DRAW}page":
            slides += 1
            yield from located("\n".join(slide), f"slide {slides}", max_chars)
            slide.clear()
            continue
        if element.tag not in (f"{_ODF_TEXT}p", f"{_ODF_TEXT}h"):
            continue
        text = element.text or ""
        if any(e.tag == f"{_ODF_DRAW}page" for e in open_elements):
            slide.append(text)
        elif element.tag == f"{_ODF_TEXT}h":
            yield from flush()
            level = _outline_level(element.get(f"{_ODF_TEXT}outline-level", "1"))
            headings = [h for h in headings if h[0] < level] + [(level, heading_label(text))]
            parts.append("#" * level + " " + text)
            held += len(text)
        elif text.strip():
            parts.append(text)
            held += len(text)
            if held >= max_chars:
                yield from flush()
    yield from flush()


def _outline_level(value: str) -> int:
    """A heading's level, 1 to 10 (a hostile ``outline-level`` of 10^9 would be 1 GB of ``#``)."""
    try:
        return min(max(int(value), 1), 10)
    except ValueError:
        return 1


