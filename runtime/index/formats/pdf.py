"""PDF: sections per page with pypdf, scanned pages through OCR when the ``ocr`` extra is there."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from typing import BinaryIO

from runtime.index.formats.base import Document, Section, SectionCutter, UnreadableFileError


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
