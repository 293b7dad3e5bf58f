"""Office files, OpenDocument, e-books and mail: real files made with the same libraries, found
by `rt search` with their location (heading path, slide, sheet rows, chapter, message →
attachment); corrupt and encrypted versions are skipped with a one-line reason."""

from __future__ import annotations

import json
import mailbox
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli


def rt(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args))


def make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Household", level=1)
    document.add_paragraph("General notes about the house.")
    document.add_heading("Heating", level=2)
    document.add_paragraph("The boiler is serviced every October by Kessler Heating.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Radiator", "Valve"
    table.cell(1, 0).text, table.cell(1, 1).text = "Attic", "thermostatic valve model TRV-88"
    document.save(str(path))


def make_pptx(path: Path) -> None:
    from pptx import Presentation

    deck = Presentation()
    for title, body in (("Roadmap", "Quarterly goals"), ("Budget", "Spending is flat"),
                        ("Launch", "The launch window opens in March")):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.slides[1].notes_slide.notes_text_frame.text = "Remember the marmalade sponsorship deal."
    deck.save(str(path))


def make_xlsx(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    first = book.active
    first.title = "Expenses"
    first.append(["Item", "Amount"])
    for i in range(2, 40):
        first.append([f"office chair {i}", i * 10])
    second = book.create_sheet("Vendors")
    second.append(["Name", "Phone"])
    second.append(["Wobblewick Plumbing", "555-0199"])
    book.save(str(path))


def make_epub(path: Path) -> None:
    chapter = ('<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>{t}</title>'
               '</head><body><h1>{t}</h1><p>{p}</p></body></html>')
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        book.writestr("META-INF/container.xml", (
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            '</rootfiles></container>'))
        book.writestr("OEBPS/content.opf", (
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            '<manifest><item id="c1" href="one.xhtml" media-type="application/xhtml+xml"/>'
            '<item id="c2" href="two.xhtml" media-type="application/xhtml+xml"/></manifest>'
            '<spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>'))
        book.writestr("OEBPS/one.xhtml", chapter.format(t="The Departure", p="They left the harbour at dawn."))
        book.writestr("OEBPS/two.xhtml", chapter.format(
            t="The Lighthouse", p="The keeper polished the brass periscope every evening."))


def make_mbox(path: Path, attachment: Path) -> None:
    box = mailbox.mbox(str(path))
    first = EmailMessage()
    first["Subject"], first["From"], first["To"] = "Dinner plans", "ana@example.org", "me@example.org"
    first.set_content("Let us meet at the tapas bar on Friday.")
    second = EmailMessage()
    second["Subject"], second["From"] = "Contract draft", "legal@example.org"
    second.set_content("The draft is attached.")
    second.add_attachment(attachment.read_bytes(), maintype="application",
                          subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
                          filename="contract.docx")
    box.add(first)
    box.add(second)
    box.flush()
    box.close()


def make_odt(path: Path) -> None:
    content = ('<?xml version="1.0"?><office:document-content '
               'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
               'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>'
               '<text:h text:outline-level="1">Garden</text:h>'
               '<text:p>Plant the quince tree near the south fence.</text:p></office:text></office:body>'
               '</office:document-content>')
    with zipfile.ZipFile(path, "w") as odt:
        odt.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        odt.writestr("content.xml", content)


def make_eml(path: Path) -> None:
    """One message whose only body is HTML (read through the HTML reader)."""
    message = EmailMessage()
    message["Subject"], message["From"] = "Piano", "tuner@example.org"
    message.set_content("<html><body><p>The piano tuner comes on <b>Tuesday</b> at nine.</p></body></html>",
                        subtype="html")
    path.write_bytes(bytes(message))


def make_odp(path: Path) -> None:
    content = ('<?xml version="1.0"?><office:document-content '
               'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
               'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
               'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:presentation>'
               '<draw:page><draw:frame><draw:text-box><text:p>Agenda</text:p></draw:text-box></draw:frame>'
               '</draw:page><draw:page><draw:frame><draw:text-box><text:p>The harbour regatta starts at noon.'
               '</text:p></draw:text-box></draw:frame></draw:page></office:presentation></office:body>'
               '</office:document-content>')
    with zipfile.ZipFile(path, "w") as odp:
        odp.writestr("mimetype", "application/vnd.oasis.opendocument.presentation")
        odp.writestr("content.xml", content)


@pytest.fixture(scope="module")
def formats_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    docs = tmp_path_factory.mktemp("formats")
    make_docx(docs / "house.docx")
    make_pptx(docs / "plan.pptx")
    make_xlsx(docs / "budget.xlsx")
    make_epub(docs / "novel.epub")
    make_odt(docs / "garden.odt")
    make_mbox(docs / "inbox.mbox", docs / "house.docx")
    make_eml(docs / "piano.eml")
    make_odp(docs / "regatta.odp")
    (docs / "broken.odt").write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    (docs / "broken.docx").write_bytes(b"PK\x03\x04 truncated zip")
    (docs / "broken.xlsx").write_bytes((docs / "budget.xlsx").read_bytes()[:300])
    (docs / "broken.pptx").write_bytes(b"\x00" * 100)
    (docs / "broken.epub").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    (docs / "locked.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504)
    folder = tmp_path_factory.mktemp("formats-index")
    result = rt("index", str(docs), "--index", str(folder), "--no-progress", "--json")
    assert result.exit_code == 0, result.output
    return docs, folder, json.loads(result.stdout)


def search(folder: Path, query: str) -> list[dict]:
    result = rt("search", query, "--index", str(folder), "--json", "-k", "3", "--mode", "keyword")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(("query", "name", "location"), [
    ("Kessler boiler serviced", "house.docx", "Household > Heating"),
    ("TRV-88 thermostatic valve", "house.docx", "Household > Heating"),
    ("marmalade sponsorship", "plan.pptx", "slide 2"),
    ("launch window March", "plan.pptx", "slide 3"),
    ("Wobblewick Plumbing", "budget.xlsx", "Vendors rows 1-2"),
    ("office chair 17", "budget.xlsx", "Expenses rows "),
    ("brass periscope keeper", "novel.epub", "The Lighthouse"),
    ("quince tree fence", "garden.odt", "Garden"),
    ("tapas bar Friday", "inbox.mbox", "message 1: Dinner plans"),
    ("Kessler boiler serviced", "inbox.mbox", "message 2: Contract draft → contract.docx, Household > Heating"),
    ("piano tuner Tuesday", "piano.eml", "Piano"),
    ("harbour regatta noon", "regatta.odp", "slide 2"),
])
def test_each_format_is_found_with_its_location(formats_index, query: str, name: str, location: str) -> None:
    _, folder, _ = formats_index
    hits = [h for h in search(folder, query) if h["path"].endswith(name)]
    assert hits, f"{name} not found for {query!r}"
    assert hits[0]["location"].startswith(location), hits[0]
    assert all(word.lower() in hits[0]["text"].lower() for word in query.split()[:2])


def test_location_shows_in_plain_search_output(formats_index) -> None:
    _, folder, _ = formats_index
    result = rt("search", "marmalade sponsorship", "--index", str(folder), "--mode", "keyword", "-k", "1")
    assert result.exit_code == 0 and "plan.pptx  slide 2" in result.output


def test_corrupt_and_encrypted_files_are_skipped_with_one_line_reasons(formats_index) -> None:
    docs, _, report = formats_index
    problems = {Path(p["path"]).name: p["reason"] for p in report["problems"]}
    assert set(problems) == {"broken.docx", "broken.xlsx", "broken.pptx", "broken.epub", "broken.odt",
                             "locked.docx"}
    assert "encrypted" in problems["locked.docx"]
    assert all("\n" not in reason and len(reason) < 300 for reason in problems.values())
    assert problems["broken.docx"].startswith("not a readable .docx file")
    assert {Path(p).name for p in report["added"]} == {
        "house.docx", "plan.pptx", "budget.xlsx", "novel.epub", "garden.odt", "inbox.mbox", "piano.eml",
        "regatta.odp"}
