"""Zip containers read in bounded memory: every member's real size is counted while it streams.

A .docx, .xlsx, .pptx, .epub, .odt or .odp file is a zip archive, and a 3 MB archive can hold a
member that expands to gigabytes (a "zip bomb"); its declared sizes may lie. rt's own readers
(e-books, OpenDocument) read members only through :func:`open_member`, which counts the bytes
the decompressor really produces and stops past a limit. python-docx, python-pptx and openpyxl
open the zip themselves, so :func:`check_archive` first streams every member through the same
counter, keeping nothing, before they are handed the file.
"""

from __future__ import annotations

import copy
import io
import logging
import zipfile
from dataclasses import dataclass, field, replace
from typing import IO

from runtime.index.formats.base import UnreadableFileError

logger = logging.getLogger(__name__)

_MB = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """How far one archive may expand before it is skipped as a bomb.

    ``member_bytes``: one member rt streams (a chapter, content.xml). ``parsed_xml_bytes``: the
    XML members together of a file a library parses whole into an lxml tree (python-docx and
    python-pptx parse every XML part; openpyxl a sheet without a ``<dimension>``). The worst
    case measured is openpyxl's scan for the dimension, which keeps every element: 28 MB of
    sheet XML built a 517 MB tree (python-docx on 16 MB of document.xml: 90 MB), so 20 MB stays
    within docs/indexing.md's 1.2 GB with the 0.54 GB that `rt index` holds anyway. ``total_bytes``:
    all members together, counting a member each time it is read; ``library_total_bytes`` the
    same for a file a library opens (python-docx and python-pptx hold every part in memory).
    ``ratio``: the most a member
    larger than ``ratio_after_bytes`` may expand (real XML compresses 5-30:1; zeros 1030:1).
    """

    member_bytes: int = 256 * _MB
    parsed_xml_bytes: int = 20 * _MB
    total_bytes: int = 512 * _MB
    library_total_bytes: int = 200 * _MB
    ratio: int = 200
    ratio_after_bytes: int = 4 * _MB
    members: int = 10_000
    block_bytes: int = 1 * _MB


LIMITS = ArchiveLimits()


class ArchiveBombError(UnreadableFileError):
    """An archive member expands past a limit (or lies about its size); ``str()`` says which."""


def _mb(size: float) -> str:
    return f"{size / _MB:.0f} MB" if size >= _MB else f"{size:.0f} bytes"


@dataclass
class Budget:
    """The bytes one file's archive has produced so far, across every member read."""

    limits: ArchiveLimits = field(default_factory=lambda: LIMITS)
    used: int = 0
    xml_used: int = 0
    opened: int = 0


# An entity declaration, in the encodings an XML member can use: no OOXML, OpenDocument or EPUB
# package file needs one, and entities that expand entities are the "billion laughs" bomb.
_ENTITY = (b"<!ENTITY", "<!ENTITY".encode("utf-16-le"), "<!ENTITY".encode("utf-16-be"))
_KINDS = ("data", "xml", "tree")


class _CountingReader(io.RawIOBase):
    """A member's decompressed bytes, counted as they come; past a limit it raises.

    ``kind``: ``data`` (bytes), ``xml`` (XML rt parses as a stream) or ``tree`` (XML a library
    parses whole, also counted against ``parsed_xml_bytes``); both XML kinds refuse entity
    declarations.
    """

    def __init__(self, inner: IO[bytes], info: zipfile.ZipInfo, limit: int, budget: Budget, kind: str) -> None:
        super().__init__()
        self._inner, self._info, self._limit, self._budget = inner, info, limit, budget
        self._xml, self._tree = kind != "data", kind == "tree"
        self._tail = b""
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = self._inner.read(min(len(view), self._budget.limits.block_bytes))
        self._count(len(data))
        if self._xml:
            window = self._tail + data
            if any(pattern in window for pattern in _ENTITY):
                raise ArchiveBombError(f"member {self._info.filename} declares XML entities "
                                       "(refused: entity expansion can be a bomb)")
            self._tail = window[-20:]
        view[:len(data)] = data
        return len(data)

    def _count(self, n: int) -> None:
        limits, budget, name = self._budget.limits, self._budget, self._info.filename
        self.size += n
        budget.used += n
        ratio = self.size / max(self._consumed(), 1)
        if self.size > self._limit:
            raise ArchiveBombError(f"archive bomb: member {name} expands past {_mb(self._limit)} (ratio {ratio:.0f}:1)")
        if self.size > limits.ratio_after_bytes and ratio > limits.ratio:
            raise ArchiveBombError(f"archive bomb: member {name} expands past {_mb(self.size)} "
                                   f"(ratio {ratio:.0f}:1, limit {limits.ratio}:1)")
        if budget.used > limits.total_bytes:
            raise ArchiveBombError(f"archive bomb: its members expand past {_mb(limits.total_bytes)} in all")
        if self._tree:
            budget.xml_used += n
            if budget.xml_used > limits.parsed_xml_bytes:
                raise ArchiveBombError(f"archive too large to parse: its XML members expand past "
                                       f"{_mb(limits.parsed_xml_bytes)} (at {name}, ratio {ratio:.0f}:1)")

    def _consumed(self) -> int:
        """The compressed bytes decompressed so far. zipfile reads ahead, keeping what is left of
        the member and the input its decompressor has not used yet (private fields of ZipExtFile
        and zlib's decompressor; without them, the whole compressed size)."""
        left = getattr(self._inner, "_compress_left", None)
        if not isinstance(left, int):
            return self._info.compress_size
        unused = getattr(getattr(self._inner, "_decompressor", None), "unconsumed_tail", b"")
        return self._info.compress_size - left - (len(unused) if isinstance(unused, bytes) else 0)

    def close(self) -> None:
        self._inner.close()
        super().close()


def _declared(info: zipfile.ZipInfo, limit: int) -> None:
    if info.file_size > limit:
        raise ArchiveBombError(f"archive bomb: member {info.filename} declares {_mb(info.file_size)} "
                               f"uncompressed, past {_mb(limit)}")


def open_member(archive: zipfile.ZipFile, name: str | zipfile.ZipInfo, budget: Budget,
                kind: str = "data") -> io.BufferedReader:
    """Member ``name`` as a stream that counts its real decompressed bytes against ``budget``.

    ``kind`` is ``data``, ``xml`` or ``tree`` (see :class:`_CountingReader`). The declared size is
    checked first; then zipfile is told the member may be as large as the limit, so that a
    member whose header understates its size is counted as it really expands (zipfile would
    stop at the declared size and fail on the CRC, hiding what the member is).
    """
    info = archive.getinfo(name) if isinstance(name, str) else name
    limits = budget.limits
    assert kind in _KINDS, kind
    limit = limits.parsed_xml_bytes if kind == "tree" else limits.member_bytes
    _declared(info, limit)
    budget.opened += 1
    if budget.opened > limits.members * 4:
        raise ArchiveBombError(f"archive bomb: members read more than {limits.members * 4} times")
    unbounded = copy.copy(info)
    unbounded.file_size = limit + 1
    inner = archive.open(unbounded)
    reader = _CountingReader(inner, info, limit, budget, kind)
    return io.BufferedReader(reader, buffer_size=64 * 1024)


def _is_xml(name: str) -> bool:
    return name.lower().endswith((".xml", ".rels", ".vml"))


def checked_archive(handle: IO[bytes], limits: ArchiveLimits | None = None) -> zipfile.ZipFile:
    """``handle`` opened as a zip archive, its member count checked."""
    limits = limits or LIMITS
    archive = zipfile.ZipFile(handle)
    count = len(archive.infolist())
    if count > limits.members:
        archive.close()
        raise ArchiveBombError(f"archive bomb: {count} members, past {limits.members}")
    return archive


def check_archive(handle: IO[bytes], limits: ArchiveLimits | None = None) -> None:
    """Stream every member of the zip ``handle`` through the counter, keeping nothing.

    For the libraries that open the archive themselves: a member past a limit, one whose
    declared size is false, or a total past the limits raises :class:`ArchiveBombError`.
    Every central-directory entry is read, duplicated names included. ``handle`` is left at 0.
    """
    start = handle.tell()
    limits = limits or LIMITS
    limits = replace(limits, total_bytes=limits.library_total_bytes)
    budget = Budget(limits)
    with checked_archive(handle, limits) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            with open_member(archive, info, budget, "tree" if _is_xml(info.filename) else "data") as stream:
                while stream.read(limits.block_bytes):
                    pass
                real = stream.raw.size  # type: ignore[attr-defined]
            if real != info.file_size:
                raise ArchiveBombError(f"archive bomb: member {info.filename} declares {_mb(info.file_size)} "
                                       f"but expands to {_mb(real)}")
    handle.seek(start)
    logger.debug("archive checked: %d members, %d bytes", len(archive.infolist()), budget.used)
