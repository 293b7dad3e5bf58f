"""Word (.docx), PowerPoint (.pptx) and Excel (.xlsx) files, through python-docx, python-pptx
and openpyxl (read-only mode: one row at a time, so a large sheet is read in bounded memory).

The libraries open the zip themselves, so each archive is first streamed through
:func:`~runtime.index.formats.archive.check_archive`: a bomb is skipped before they parse it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from runtime.index.formats.archive import check_archive
from runtime.index.formats.base import Section
from runtime.index.formats.common import guarded, heading_label, located

SHEET_BLOCK_CHARS = 1200  # rows grouped into blocks about one chunk long, so "rows a-b" stays precise


def read_docx(handle: BinaryIO, encoding: str | None, max_chars: int) -> Iterator[Section]:
    """Paragraphs and tables in document order; each section is labelled with its heading path."""
    return guarded(".docx file", handle, lambda: _docx(handle, max_chars))


def _docx(handle: BinaryIO, max_chars: int) -> Iterator[Section]:
    import docx
    from docx.text.paragraph import Paragraph

    check_archive(handle)
    document = docx.Document(handle)
    headings: list[tuple[int, str]] = []
    parts: list[str] = []

    def flush() -> Iterator[Section]:
        text = "\n\n".join(p for p in parts if p.strip())
        parts.clear()
        if text:
            yield from located(text, " > ".join(h for _, h in headings) or None, max_chars)

    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(element, document)
            level = _heading_level(paragraph.style.name if paragraph.style is not None else "")
            if level is not None and paragraph.text.strip():
                yield from flush()
                headings[:] = [h for h in headings if h[0] < level] + [(level, heading_label(paragraph.text))]
            parts.append(("#" * max(level or 0, 1) + " " if level is not None else "") + paragraph.text)
        elif tag == "tbl":
            parts.append(_table_text(element, document))
    yield from flush()


def _table_text(table: Any, document: Any) -> str:
    """A table's rows as ``a | b`` lines, read from the cells' XML. python-docx's ``row.cells``
    repeats a cell once per grid column it spans: a ``gridSpan`` of 10^8 in a 40 KB file hung."""
    from docx.oxml.ns import qn
    from docx.text.paragraph import Paragraph

    rows = []
    for row in table.iterchildren(qn("w:tr")):
        cells = ("\n".join(Paragraph(p, document).text for p in cell.iterchildren(qn("w:p"))).strip()
                 for cell in row.iterchildren(qn("w:tc")))
        rows.append(" | ".join(_unique(cells)))
    return "\n".join(rows)


def _heading_level(style: str) -> int | None:
    if style == "Title":
        return 0
    if style.startswith("Heading ") and style[8:].isdigit():
        return int(style[8:])
    return None


def _unique(cells: Iterator[str]) -> list[str]:
    """Cell texts without the repeats python-docx returns for merged cells."""
    out: list[str] = []
    for cell in cells:
        if not out or out[-1] != cell:
            out.append(cell)
    return out


def read_pptx(handle: BinaryIO, encoding: str | None, max_chars: int) -> Iterator[Section]:
    """Each slide's text (shapes, tables, then the speaker notes), labelled ``slide N``."""
    return guarded(".pptx file", handle, lambda: _pptx(handle, max_chars))


def _pptx(handle: BinaryIO, max_chars: int) -> Iterator[Section]:
    from pptx import Presentation

    check_archive(handle)
    for number, slide in enumerate(Presentation(handle).slides, start=1):
        parts = [text for shape in slide.shapes for text in _shape_texts(shape)]
        if slide.has_notes_slide and (notes := slide.notes_slide.notes_text_frame) is not None:
            if notes.text.strip():
                parts.append("Notes: " + notes.text)
        yield from located("\n\n".join(p for p in parts if p.strip()), f"slide {number}", max_chars)


def _shape_texts(shape: Any) -> Iterator[str]:
    if getattr(shape, "has_text_frame", False):
        yield shape.text_frame.text
    if getattr(shape, "has_table", False):
        yield "\n".join(" | ".join(cell.text for cell in row.cells) for row in shape.table.rows)
    for inner in getattr(shape, "shapes", ()):  # groups
        yield from _shape_texts(inner)


def read_xlsx(handle: BinaryIO, encoding: str | None, max_chars: int) -> Iterator[Section]:
    """Each sheet's rows as ``a | b | c`` lines, in blocks labelled ``Sheet1 rows 2-40``."""
    return guarded(".xlsx file", handle, lambda: _xlsx(handle, min(max_chars, SHEET_BLOCK_CHARS)))


def _xlsx(handle: BinaryIO, block_chars: int) -> Iterator[Section]:
    import openpyxl

    check_archive(handle)
    book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    try:
        for sheet in book.worksheets:
            lines: list[str] = []
            size, first, last = 0, 0, 0
            for number, values in _sheet_rows(book, sheet):
                cells = [str(v) for v in values if v is not None and str(v).strip()]
                if not cells:
                    continue
                line = " | ".join(cells)
                if lines and size + len(line) > block_chars:
                    yield from located("\n".join(lines), _rows(sheet.title, first, last), block_chars * 4)
                    lines, size = [], 0
                if not lines:
                    first = number
                lines.append(line)
                size += len(line) + 1
                last = number
            if lines:
                yield from located("\n".join(lines), _rows(sheet.title, first, last), block_chars * 4)
    finally:
        book.close()


def _sheet_rows(book: Any, sheet: Any) -> Iterator[tuple[int, list[Any]]]:
    """The rows a sheet holds, with their numbers. ``iter_rows`` would also yield an empty row for
    every row number skipped, padded to the widest column: one cell at ``XFD1048576`` (or at a
    row number of 10^12, which openpyxl accepts) turned a 5 KB file into hours of empty rows."""
    from openpyxl.worksheet._reader import WorkSheetParser  # openpyxl's own row parser (3.1)

    with book._archive.open(sheet._worksheet_path) as source:
        parser = WorkSheetParser(source, sheet._shared_strings, data_only=True, epoch=book.epoch,
                                 date_formats=book._date_formats, timedelta_formats=book._timedelta_formats)
        for number, cells in parser.parse():
            yield number, [cell["value"] for cell in cells]


def _rows(sheet: str, first: int, last: int) -> str:
    return f"{sheet} row {first}" if first == last else f"{sheet} rows {first}-{last}"
