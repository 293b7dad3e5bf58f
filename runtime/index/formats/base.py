"""What every format reader shares: the :class:`Section` it yields, the errors it raises, the
file's fingerprint, decoding in blocks, and :class:`SectionCutter`.

A :class:`Section` is a run of text with its PDF page, or a map from character offsets to the
source file's line numbers. Readers raise :class:`BinaryFileError` or
:class:`UnreadableFileError`; the indexer reports those by name and carries on.
"""

from __future__ import annotations

import bisect
import codecs
import hashlib
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

logger = logging.getLogger(__name__)

SNIFF_BYTES = 8192


class BinaryFileError(Exception):
    """The file is not text (NUL bytes, or a known binary format)."""


class UnreadableFileError(Exception):
    """The file could not be read or decoded; ``str()`` says why."""


@dataclass(frozen=True)
class Section:
    """Text from one place in a file: a PDF page, or a text file with its line numbers.

    ``line_anchors`` holds sorted ``(char_offset, line)`` pairs: the text from each offset on
    comes from that source line (1-based). ``None`` means lines do not apply (PDF pages).
    ``offset`` is where ``text`` starts in the decoded file (or the page): long files come as
    several sections.
    """

    text: str
    page: int | None = None
    line_anchors: tuple[tuple[int, int], ...] | None = None
    offset: int = 0
    location: str | None = None  # "slide 7", "Sheet1 rows 2-40", a heading path (see formats/)
    no_text: bool = False  # a PDF page without a text layer that was not OCR'd

    def line_at(self, offset: int) -> int | None:
        """The source line of the character at ``offset``, if the section has lines."""
        if not self.line_anchors:
            return None
        i = bisect.bisect_right(self.line_anchors, (offset, float("inf"))) - 1
        return self.line_anchors[max(i, 0)][1]


@dataclass(frozen=True)
class Document:
    """A file's sections and how its text was decoded (``None`` for PDF)."""

    kind: str
    sections: tuple[Section, ...]
    encoding: str | None = None


def newline_anchors(text: str, first_line: int = 1) -> tuple[tuple[int, int], ...]:
    """Line anchors for plain text: line ``first_line + n`` starts after the ``n``-th newline."""
    anchors = [(0, first_line)]
    anchors.extend((m.end(), first_line + i + 1) for i, m in enumerate(re.finditer("\n", text)))
    return tuple(anchors)


_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")


@dataclass(frozen=True)
class FileFacts:
    """What one pass over a file's bytes tells: its hash, size and text encoding.

    ``encoding`` is the encoding the whole file decodes with (``None`` when it is not text);
    ``binary`` and ``problem`` say why it is not.
    """

    sha256: str
    size: int
    encoding: str | None
    binary: bool = False
    problem: str | None = None


def fingerprint(handle: BinaryIO, block_bytes: int = 1 << 20) -> FileFacts:
    """Hash ``handle`` in blocks and find its text encoding on the way, in bounded memory.

    The choice is :func:`decode_text`'s: UTF-8 (BOM or not), UTF-16 with a BOM, else Windows-1252
    (it only fails on five unassigned bytes, so a file it cannot decode is not Western text).
    """
    digest = hashlib.sha256()
    first = handle.read(block_bytes)
    bom = "utf-8-sig" if first.startswith(codecs.BOM_UTF8) else (
        "utf-16" if first.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else None)
    decoder = codecs.getincrementaldecoder(bom or "utf-8")("strict")
    decodes, cp1252_ok, size, bad_at, bad_byte = True, True, 0, 0, 0
    block = first
    while block:
        digest.update(block)
        if decodes and bom != "utf-8-sig":  # a UTF-8 BOM file decodes with replacement
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                decodes, bad_at = False, size - len(decoder.getstate()[0]) + exc.start
                bad_byte = exc.object[exc.start]
        if cp1252_ok and _CP1252_UNDEFINED.search(block):
            cp1252_ok = False
        size += len(block)
        block = handle.read(block_bytes)
    if decodes and bom != "utf-8-sig":
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            decodes, bad_at = False, size - len(decoder.getstate()[0]) + exc.start
            bad_byte = exc.object[exc.start]
    sha = digest.hexdigest()
    if bom == "utf-16":
        problem = None if decodes else f"invalid UTF-16 at byte {bad_at}"
        return FileFacts(sha, size, "utf-16" if decodes else None, problem=problem)
    if bom is None and b"\x00" in first[:SNIFF_BYTES]:
        return FileFacts(sha, size, None, binary=True, problem="contains NUL bytes")
    if bom or decodes:
        return FileFacts(sha, size, bom or "utf-8")
    if cp1252_ok:
        return FileFacts(sha, size, "cp1252")
    return FileFacts(sha, size, None, problem=(
        f"not UTF-8 (invalid byte 0x{bad_byte:02x} at offset {bad_at}), UTF-16 or Windows-1252 text"))


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode ``data`` as UTF-8 (BOM or not), UTF-16 with a BOM, or Windows-1252 (whole, in memory)."""
    facts = fingerprint(io.BytesIO(data))
    if facts.binary:
        raise BinaryFileError(facts.problem)
    if facts.encoding is None:
        raise UnreadableFileError(facts.problem)
    return "".join(text_blocks(io.BytesIO(data), facts.encoding)), facts.encoding


def unix_newlines(text: str) -> str:
    """``text`` with Windows (CRLF) and old Mac (CR) line endings made ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def text_blocks(handle: BinaryIO, encoding: str, block_bytes: int = 1 << 20) -> Iterator[str]:
    """The decoded text of ``handle``, one block at a time (invalid bytes replaced: the file may
    have changed since it was fingerprinted), its line endings made ``\\n``.

    A file saved by Notepad or exported by Office ends its lines with CRLF: the chunker's
    paragraph and heading patterns, and the line numbers, see ``\\n`` only. A CR that ends a
    block waits for the next one, in case that starts with the LF of the same line end.
    """
    decoder = codecs.getincrementaldecoder(encoding)("replace")
    held = ""

    def decoded() -> Iterator[str]:
        while block := handle.read(block_bytes):
            yield decoder.decode(block)
        yield decoder.decode(b"", final=True)

    for text in decoded():
        text = held + text
        held = "\r" if text.endswith("\r") else ""
        if text := unix_newlines(text[:-1] if held else text):
            yield text
    if held:
        yield "\n"


class SectionCutter:
    """Collects text with its source lines and cuts it into sections of at most ``max_chars``.

    This is what bounds memory on any one file: a 50 MB line or a page of text becomes
    sections of at most ``max_chars`` characters, cut after a blank line, else a newline, else a
    space in the second half of the window, else hard. A piece of a long line keeps that line's
    number; each section records its character offset in the file (or page).
    """

    def __init__(self, max_chars: int, page: int | None = None, *, lines: bool = True) -> None:
        self.max_chars = max(max_chars, 2)
        self.page = page
        self.lines = lines
        self._parts: list[str] = []
        self._anchors: list[tuple[int, int]] = []
        self._length = 0
        self._offset = 0
        self.tail = ""  # the last few characters added (for HTML's paragraph breaks)

    def add(self, text: str, line: int = 1, *, source: bool = True) -> Iterator[Section]:
        """Append ``text`` that starts at source ``line``; with ``source``, its newlines advance
        the line. Yields the sections that became full."""
        text = unix_newlines(text)  # text from documents (a PDF page, an e-mail body) may use CRLF
        for start in range(0, len(text), self.max_chars):
            piece = text[start:start + self.max_chars]
            if self.lines:
                self._anchors.append((self._length, line))
                if source:
                    self._anchors.extend((self._length + m.end(), line + i + 1)
                                         for i, m in enumerate(re.finditer("\n", piece)))
                    line += piece.count("\n")
            self._parts.append(piece)
            self._length += len(piece)
            self.tail = (self.tail + piece)[-3:]
            while self._length >= self.max_chars:
                yield self._cut(_cut_point(self._joined(), self.max_chars))

    def finish(self) -> Iterator[Section]:
        """The rest of the text as a last section (if it holds anything)."""
        if self._length:
            yield self._cut(self._length)

    def _joined(self) -> str:
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0]

    def _cut(self, cut: int) -> Section:
        text = self._joined()
        anchors = self._anchors
        i = bisect.bisect_left(anchors, (cut, -1))
        head = tuple(anchors[:i]) or None
        rest = [(offset - cut, line) for offset, line in anchors[i:]]
        if self.lines and anchors and (not rest or rest[0][0] != 0):
            rest.insert(0, (0, anchors[i - 1][1] if i else 1))
        section = Section(text[:cut], self.page, head if self.lines else None, self._offset)
        self._parts, self._anchors = ([text[cut:]] if cut < len(text) else []), rest
        self._length -= cut
        self._offset += cut
        return section


def _cut_point(text: str, limit: int) -> int:
    """Where to end a section of at most ``limit`` characters: after a paragraph, a line or a word."""
    half = limit // 2
    for separator in ("\n\n", "\n", " "):
        at = text.rfind(separator, half, limit)
        if at != -1:
            return at + len(separator)
    for at in range(limit - 1, half, -1):
        if text[at].isspace():
            return at + 1
    return limit
