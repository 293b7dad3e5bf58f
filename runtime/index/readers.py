"""Turn a file's bytes into text sections that remember where they came from.

One reader per format: plain text (.txt, .md, .rst and any other text file), HTML, PDF. A
:class:`Section` is a run of text with its PDF page, or a map from character offsets to the
source file's line numbers. Readers raise :class:`BinaryFileError` or
:class:`UnreadableFileError`; the indexer reports those by name and carries on.
"""

from __future__ import annotations

import bisect
import codecs
import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

logger = logging.getLogger(__name__)

HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
PDF_SUFFIXES = frozenset({".pdf"})
# Formats rt cannot read as text: skipped as binaries without opening them.
BINARY_SUFFIXES = frozenset(
    ".png .jpg .jpeg .gif .bmp .tif .tiff .webp .ico .heic .mp3 .wav .flac .ogg .m4a .mp4 .mov "
    ".avi .mkv .webm .zip .gz .tgz .bz2 .xz .7z .rar .tar .exe .dll .so .dylib .bin .o .a .lib "
    ".class .jar .pyc .pyd .whl .doc .docx .xls .xlsx .ppt .pptx .odt .ods .odp .epub .iso .dmg "
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
    """

    text: str
    page: int | None = None
    line_anchors: tuple[tuple[int, int], ...] | None = None

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


def newline_anchors(text: str) -> tuple[tuple[int, int], ...]:
    """Line anchors for plain text: line ``n+1`` starts after the ``n``-th newline."""
    anchors = [(0, 1)]
    anchors.extend((m.end(), i + 2) for i, m in enumerate(re.finditer("\n", text)))
    return tuple(anchors)


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode ``data`` as UTF-8 (BOM or not), UTF-16 with a BOM, or Windows-1252.

    Windows-1252 is the fallback because it is what Notepad wrote for decades; it only fails on
    five unassigned bytes, so a file it cannot decode is not text in any Western encoding.
    """
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="replace"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise UnreadableFileError(f"invalid UTF-16 at byte {exc.start}") from exc
    if b"\x00" in data[:SNIFF_BYTES]:
        raise BinaryFileError("contains NUL bytes")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            raise UnreadableFileError(
                f"not UTF-8 (invalid byte 0x{data[utf8_error.start]:02x} at offset "
                f"{utf8_error.start}), UTF-16 or Windows-1252 text"
            ) from None


def read_plain(data: bytes) -> Document:
    """A text file as one section with its own line numbers."""
    text, encoding = decode_text(data)
    return Document("text", (Section(text, None, newline_anchors(text)),), encoding)


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, headings marked ``#`` like Markdown, with source lines."""

    SKIP = frozenset({"script", "style", "noscript", "template", "svg"})
    BLOCK = frozenset(
        "p div section article header footer main nav aside li ul ol table tr blockquote pre "
        "dl dt dd figure figcaption form hr br title".split()
    )
    LINE = frozenset({"br", "li", "tr", "dt", "dd"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.anchors: list[tuple[int, int]] = []
        self._length = 0
        self._skipping = 0

    def _emit(self, text: str, *, source: bool = False) -> None:
        line = self.getpos()[0]
        self.anchors.append((self._length, line))
        if source:  # text copied from the page spans its own source lines
            self.anchors.extend(
                (self._length + m.end(), line + i + 1)
                for i, m in enumerate(re.finditer("\n", text))
            )
        self.parts.append(text)
        self._length += len(text)

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
        tail = "".join(self.parts[-3:])
        return len(tail) - len(tail.rstrip("\n")) if self.parts else 2

    def _break(self, newlines: int) -> None:
        missing = newlines - self._tail_newlines()
        if missing > 0:
            self._emit("\n" * missing)


def read_html(data: bytes) -> Document:
    """Visible text of an HTML file; lines point into the HTML source."""
    source, encoding = decode_text(data)
    parser = _HTMLText()
    parser.feed(source)
    parser.close()
    text = "".join(parser.parts)
    return Document("html", (Section(text, None, tuple(parser.anchors)),), encoding)


def read_pdf(data: bytes) -> Document:
    """One section per PDF page (1-based page numbers), extracted with pypdf."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFileError("the PDF is encrypted with a password")
        sections = tuple(
            Section(page.extract_text() or "", page=number)
            for number, page in enumerate(reader.pages, start=1)
        )
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UnreadableFileError(f"not a readable PDF ({type(exc).__name__}: {exc})") from exc
    return Document("pdf", sections)


def reader_for(path: Path) -> Callable[[bytes], Document]:
    """The reader for ``path``'s format; raise :class:`BinaryFileError` for known binaries."""
    suffix = path.suffix.lower()
    if suffix in BINARY_SUFFIXES:
        raise BinaryFileError(f"{suffix} files are not text")
    if suffix in PDF_SUFFIXES:
        return read_pdf
    if suffix in HTML_SUFFIXES:
        return read_html
    return read_plain
