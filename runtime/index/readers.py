"""Which reader reads a file: the format registry, by file suffix.

The readers live in :mod:`runtime.index.formats` (plain text, HTML, PDF, Office, e-books, mail),
each importing only :mod:`runtime.index.formats.base`; the names they share are re-exported here
for the callers that read files.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from runtime.index.formats.base import (
    SNIFF_BYTES,
    BinaryFileError,
    Document,
    FileFacts,
    Section,
    SectionCutter,
    UnreadableFileError,
    decode_text,
    fingerprint,
    newline_anchors,
    text_blocks,
    unix_newlines,
)
from runtime.index.formats.html import read_html, read_html_stream
from runtime.index.formats.pdf import read_pdf, read_pdf_stream
from runtime.index.formats.plain import read_plain, read_plain_stream

__all__ = ["BINARY_SUFFIXES", "FORMAT_READERS", "HTML_SUFFIXES", "PDF_SUFFIXES", "SNIFF_BYTES", "BinaryFileError",
           "Document", "FileFacts", "Reader", "Section", "SectionCutter", "UnreadableFileError", "decode_text",
           "fingerprint", "newline_anchors", "read_html", "read_html_stream", "read_pdf", "read_pdf_stream",
           "read_plain", "read_plain_stream", "reader_for", "text_blocks", "unix_newlines"]

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


@dataclass(frozen=True)
class Reader:
    """A format: its name, whether it is text (decoded with the file's encoding), how it is read."""

    kind: str
    text: bool
    read: Callable[..., Iterator[Section]]


def _lazy(module: str, function: str) -> Callable[..., Iterator[Section]]:
    """A reader function imported from ``runtime.index.formats.<module>`` when first called (its
    libraries are heavy; the formats import only :mod:`runtime.index.formats.base`, never this
    registry, so there is no cycle to hide)."""
    def read(handle: BinaryIO, encoding: str | None, max_chars: int) -> Iterator[Section]:
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
