"""Scanned PDFs: pages without a text layer are read with OCR (the ``ocr`` extra, RapidOCR),
or counted in the summary with how to get OCR; never indexed silently as empty."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli

pytest.importorskip("rapidocr_onnxruntime", reason="the ocr extra is not installed")

LINES = ["The spare key is under the", "blue flowerpot by the shed."]


def write_scanned_pdf(path: Path, lines: list[str], pages: int = 1) -> None:
    """An image-only PDF: text rendered to a picture with PIL, placed on the page with reportlab."""
    from PIL import Image, ImageDraw, ImageFont
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    picture = Image.new("RGB", (1240, 400), "white")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=56)
    for i, line in enumerate(lines):
        draw.text((40, 60 + i * 110), line, fill="black", font=font)
    pdf = canvas.Canvas(str(path), pagesize=A4)
    for _ in range(pages):
        pdf.drawImage(ImageReader(picture), 40, 500, width=520, height=168)
        pdf.showPage()
    pdf.save()


def rt(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args))


def test_a_scanned_pdf_is_read_with_ocr_and_its_passages_are_marked(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    write_scanned_pdf(docs / "scan.pdf", LINES)
    folder = tmp_path / "ix"
    result = rt("index", str(docs), "--index", str(folder), "--no-progress", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["added"] and report["pages_without_text"] == {}
    hits = json.loads(rt("search", "spare key flowerpot", "--index", str(folder), "--json",
                         "--mode", "keyword").stdout)
    assert hits and hits[0]["path"].endswith("scan.pdf")
    assert hits[0]["page"] == 1 and hits[0]["location"] == "page 1, OCR"
    assert "flowerpot" in hits[0]["text"].lower()


def test_without_ocr_the_summary_counts_pages_without_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runtime.index.formats.ocr as ocr

    monkeypatch.setattr(ocr, "ocr_available", lambda: False)  # as if the extra were not installed
    docs = tmp_path / "docs"
    docs.mkdir()
    write_scanned_pdf(docs / "scan.pdf", LINES, pages=2)
    folder = tmp_path / "ix"
    result = rt("index", str(docs), "--index", str(folder), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "2 PDF page(s) without a text layer in scan.pdf" in result.output
    assert "pip install 'rt[ocr]'" in result.output
