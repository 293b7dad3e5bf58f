"""Turn a file's bytes into text sections that remember where they came from.

One reader per format: plain text (.txt, .md, .rst and any other text file), HTML, PDF. A
:class:`Section` is a run of text with its PDF page, or a map from character offsets to the
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
PDF_SUFFIXES = frozenset({".pdf"})
# Formats rt cannot read as text: skipped as binaries without opening them.
BINARY_SUFFIXES = frozenset(
    ".png .jpg .jpeg .gif .bmp .tif .tiff .webp .ico .heic .mp3 .wav .flac .ogg .m4a .mp4 .mov "
    ".avi .mkv .webm .zip .gz .tgz .bz2 .xz .7z .rar .tar .exe .dll .so .dylib .bin .o .a .lib "
    ".class .jar .pyc .pyd .whl .doc .xls .ppt .ods .iso .dmg "
    ".sqlite .db .faiss .gguf .safetensors .pt .pth .onnx .npy .npz .pkl .parquet .woff .woff2 .ttf "
    ".otf .psd .ai .msi".split()
)
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


def read_plain_stream(handle: BinaryIO, encoding: str, max_chars: int) -> Iterator[Section]:
    """A text file as sections of at most ``max_chars`` characters with their own line numbers."""
    cutter = SectionCutter(max_chars)
    line = 1
    for block in text_blocks(handle, encoding):
        yield from cutter.add(block, line)
        line += block.count("\n")
    yield from cutter.finish()


def read_plain(data: bytes) -> Document:
    """A text file held in memory as one section with its own line numbers."""
    text, encoding = decode_text(data)
    return Document("text", (Section(text, None, newline_anchors(text)),), encoding)


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, headings marked ``#`` like Markdown, with source lines.

    Text goes straight into a :class:`SectionCutter`, so a page of any size or nesting depth
    is held only one section at a time (the parser keeps no stack of open tags).
    """

    SKIP = frozenset({"script", "style", "noscript", "template", "svg"})
    BLOCK = frozenset(
        "p div section article header footer main nav aside li ul ol table tr blockquote pre "
        "dl dt dd figure figcaption form hr br title".split()
    )
    LINE = frozenset({"br", "li", "tr", "dt", "dd"})

    def __init__(self, max_chars: int) -> None:
        super().__init__(convert_charrefs=True)
        self.cutter = SectionCutter(max_chars)
        self.ready: list[Section] = []
        self._started = False
        self._skipping = 0

    def _emit(self, text: str, *, source: bool = False) -> None:
        self._started = True
        self.ready.extend(self.cutter.add(text, self.getpos()[0], source=source))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._break(2)
            self._emit("#" * int(tag[1]) + " ")
        elif tag in self.BLOCK:
            self._break(1 if tag in self.LINE else 2)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif re.fullmatch(r"h[1-6]", tag) or tag in self.BLOCK:
            self._break(1 if tag in self.LINE else 2)

    def handle_data(self, data: str) -> None:
        if self._skipping or (not data.strip() and self._tail_newlines() > 0):
            return
        self._emit(data, source=True)

    def _tail_newlines(self) -> int:
        if not self._started:
            return 2
        tail = self.cutter.tail
        return len(tail) - len(tail.rstrip("\n"))

    def _break(self, newlines: int) -> None:
        missing = newlines - self._tail_newlines()
        if missing > 0:
            self._emit("\n" * missing)


def read_html_stream(handle: BinaryIO, encoding: str, max_chars: int) -> Iterator[Section]:
    """Visible text of an HTML file, fed to the parser a block at a time; lines point into the
    HTML source."""
    parser = _HTMLText(max_chars)
    for block in text_blocks(handle, encoding):
        parser.feed(block)
        yield from parser.ready
        parser.ready.clear()
    parser.close()
    yield from parser.ready
    yield from parser.cutter.finish()


def read_html(data: bytes) -> Document:
    """Visible text of an HTML file held in memory, as one section."""
    _, encoding = decode_text(data)
    sections = list(read_html_stream(io.BytesIO(data), encoding, max(len(data), 1) * 4))
    return Document("html", tuple(sections), encoding)


def read_pdf_stream(handle: BinaryIO, encoding: str | None, max_chars: int) -> Iterator[Section]:
    """One or more sections per PDF page (1-based page numbers), extracted with pypdf one page at
    a time; a page with more text than ``max_chars`` is cut like a long text file.

    A page without a text layer (a scan) is read with OCR when the ``ocr`` extra is installed,
    its sections labelled ``page N, OCR``; without it, an empty section marked ``no_text`` says
    so, for the report.
    """
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    from runtime.index.formats.ocr import ocr_available, ocr_page

    try:
        reader = PdfReader(handle)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFileError("the PDF is encrypted with a password")
        for number, page in enumerate(reader.pages, start=1):
            cutter = SectionCutter(max_chars, page=number, lines=False)
            text = page.extract_text() or ""
            if text.strip():
                yield from cutter.add(text)
                yield from cutter.finish()
            elif not ocr_available():
                yield Section("", number, no_text=True)
            else:
                label = f"page {number}, OCR"
                yield from (replace(s, location=label) for s in [*cutter.add(ocr_page(page)), *cutter.finish()])
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise UnreadableFileError(f"not a readable PDF ({type(exc).__name__}: {exc})") from exc


def read_pdf(data: bytes) -> Document:
    """One section per PDF page held in memory (1-based page numbers)."""
    sections = tuple(read_pdf_stream(io.BytesIO(data), None, max(len(data), 1) * 1000))
    return Document("pdf", sections)


@dataclass(frozen=True)
class Reader:
    """A format: its name, whether it is text (decoded with the file's encoding), how it is read."""

    kind: str
    text: bool
    read: Callable[..., Iterator[Section]]


def _lazy(module: str, function: str) -> Callable[..., Iterator[Section]]:
    """A reader function imported from ``runtime.index.formats.<module>`` when first called."""
    def read(handle: BinaryIO, encoding: str | None, max_chars: int) -> Iterator[Section]:
        import importlib

        return getattr(importlib.import_module(f"runtime.index.formats.{module}"), function)(
            handle, encoding, max_chars)
    return read


_PLAIN = Reader("text", True, read_plain_stream)
_HTML = Reader("html", True, read_html_stream)
_PDF = Reader("pdf", False, read_pdf_stream)
FORMAT_READERS = {
    ".docx": Reader("docx", False, _lazy("office", "read_docx")),
    ".pptx": Reader("pptx", False, _lazy("office", "read_pptx")),
    ".xlsx": Reader("xlsx", False, _lazy("office", "read_xlsx")),
    ".epub": Reader("epub", False, _lazy("ebook", "read_epub")),
    ".odt": Reader("odt", False, _lazy("ebook", "read_odf")),
    ".odp": Reader("odp", False, _lazy("ebook", "read_odf")),
    ".eml": Reader("email", False, _lazy("mail", "read_eml")),
    ".mbox": Reader("mbox", False, _lazy("mail", "read_mbox")),
}


def reader_for(path: Path) -> Reader:
    """The reader for ``path``'s format; raise :class:`BinaryFileError` for known binaries."""
    suffix = path.suffix.lower()
    if suffix in BINARY_SUFFIXES:
        raise BinaryFileError(f"{suffix} files are not text")
    if suffix in FORMAT_READERS:
        return FORMAT_READERS[suffix]
    if suffix in PDF_SUFFIXES:
        return _PDF
    if suffix in HTML_SUFFIXES:
        return _HTML
    return _PLAIN
