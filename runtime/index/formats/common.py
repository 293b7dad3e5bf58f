"""What the format readers share: cutting located text into sections, one-line failure reasons."""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import BinaryIO

from runtime.index.readers import Section, SectionCutter, UnreadableFileError

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted OOXML and old .doc/.xls/.ppt files


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
