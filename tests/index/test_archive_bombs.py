"""Zip bombs and hostile XML in the archive formats (issue 21): skipped with a one-line reason,
in bounded memory, while the good files beside them are indexed."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from runtime.index.formats import archive
from runtime.index.formats.archive import LIMITS
from runtime.index.readers import UnreadableFileError, reader_for
from tests.index.archive_files import bomb_member, deflated, lying, members_of, with_member, write_zip
from tests.index.test_formats import make_docx, make_epub, make_mbox, make_odp, make_odt, make_pptx, make_xlsx
from tests.index.test_memory_bound import MEASURE, PEAK_RSS_BOUND, REPO

# The member each format's reader must read, with the function that makes a good file.
FORMATS: dict[str, tuple[Callable[[Path], None], str]] = {
    "docx": (make_docx, "word/document.xml"),
    "xlsx": (make_xlsx, "xl/worksheets/sheet1.xml"),
    "pptx": (make_pptx, "ppt/slides/slide1.xml"),
    "epub": (make_epub, "OEBPS/one.xhtml"),
    "odt": (make_odt, "content.xml"),
    "odp": (make_odp, "content.xml"),
}


def good(folder: Path, kind: str, name: str = "good") -> Path:
    path = folder / f"{name}.{kind}"
    FORMATS[kind][0](path)
    return path


def read(path: Path) -> str:
    with open(path, "rb") as handle:
        return "\n".join(s.text for s in reader_for(path).read(handle, None, 4000))


def refused(path: Path, *words: str) -> str:
    with pytest.raises(UnreadableFileError) as caught:
        read(path)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 300, message
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_a_member_declaring_a_gigabyte_is_refused_before_it_is_read(tmp_path: Path, kind: str) -> None:
    member = FORMATS[kind][1]
    bomb = with_member(good(tmp_path, kind), tmp_path / f"bomb.{kind}", bomb_member(member, 1000))
    refused(bomb, f"archive bomb: member {member} declares 1000 MB uncompressed")


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_a_member_lying_about_its_size_is_counted_as_it_expands(tmp_path: Path, kind: str) -> None:
    member = FORMATS[kind][1]
    bomb = with_member(good(tmp_path, kind), tmp_path / f"bomb.{kind}", bomb_member(member, 200, declared=1000))
    message = refused(bomb, f"archive bomb: member {member} expands past")
    ratio = int(message.split("ratio ")[1].split(":")[0])
    assert ratio > LIMITS.ratio


def test_a_false_size_within_the_limits_is_refused_before_a_library_reads_it(tmp_path: Path) -> None:
    source = good(tmp_path, "docx")
    real = next(m for m in members_of(source) if m.name == "word/document.xml")
    bomb = with_member(source, tmp_path / "lie.docx", lying(real, real.size // 2))
    refused(bomb, "member word/document.xml declares", "but expands to")


@pytest.mark.parametrize("kind", ["docx", "odt"])
def test_xml_entities_are_refused(tmp_path: Path, kind: str) -> None:
    """A "billion laughs": ten entities each ten times the one before."""
    member = FORMATS[kind][1]
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    xml = f'<?xml version="1.0"?><!DOCTYPE r [{entities}]><r>&lol9;</r>'.encode()
    bomb = with_member(good(tmp_path, kind), tmp_path / f"laughs.{kind}", deflated(member, xml))
    refused(bomb, f"member {member} declares XML entities")


def test_deep_xml_nesting_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    depth = 1_000_000
    xml = b'<?xml version="1.0"?>' + b"<a>" * depth + b"</a>" * depth
    bomb = with_member(good(tmp_path, "odt"), tmp_path / "deep.odt", deflated("content.xml", xml))
    refused(bomb, "XML nested deeper than")


def test_a_hostile_outline_level_does_not_become_a_heading_of_a_billion_marks(tmp_path: Path) -> None:
    xml = ('<?xml version="1.0"?><office:document-content '
           'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
           'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>'
           '<text:h text:outline-level="100000000">Deep</text:h><text:p>Body text.</text:p>'
           '</office:text></office:body></office:document-content>').encode()
    odt = write_zip(tmp_path / "level.odt", [deflated("content.xml", xml)])
    text = read(odt)
    assert "Body text." in text and text.count("#") <= 10, text[:200]


def test_a_sheet_with_far_apart_rows_is_read_without_the_rows_between(tmp_path: Path) -> None:
    """openpyxl's iter_rows yields every skipped row padded to the widest column: rows 1 and
    10^12 were hours of empty rows from a 5 KB file. The reader runs in a subprocess with a
    timeout, so that the old behaviour fails instead of hanging the suite."""
    source = good(tmp_path, "xlsx")
    sheet = ('<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
             '<dimension ref="A1:XFD1048576"/><sheetData>'
             '<row r="1"><c r="A1" t="inlineStr"><is><t>first row</t></is></c></row>'
             '<row r="1000000000000"><c r="XFD1000000000000" t="inlineStr"><is><t>far row</t></is></c></row>'
             '</sheetData></worksheet>').encode()
    sparse = with_member(source, tmp_path / "sparse.xlsx", deflated("xl/worksheets/sheet1.xml", sheet))
    text = read_in_subprocess(sparse)
    assert "first row" in text and "far row" in text and "Wobblewick" in text


def test_a_table_cell_spanning_a_hundred_million_columns_is_read_once(tmp_path: Path) -> None:
    """python-docx's row.cells repeats a cell per grid column it spans (found by the fuzzer)."""
    source = good(tmp_path, "docx")
    document = next(m for m in members_of(source) if m.name == "word/document.xml")
    xml = zlib.decompress(document.data, -15).replace(b"<w:tcPr>", b'<w:tcPr><w:gridSpan w:val="100000000"/>')
    wide = with_member(source, tmp_path / "span.docx", deflated("word/document.xml", xml))
    assert "Attic | thermostatic valve model TRV-88" in read_in_subprocess(wide)


def test_a_bomb_attached_to_a_message_does_not_lose_the_message(tmp_path: Path, caplog) -> None:
    bomb = with_member(good(tmp_path, "docx"), tmp_path / "bomb.docx", bomb_member("word/document.xml", 200,
                                                                                    declared=1000))
    mbox = tmp_path / "inbox.mbox"
    make_mbox(mbox, bomb)
    with caplog.at_level(logging.INFO, logger="runtime.index.formats.mail"):
        text = read(mbox)
    assert "tapas bar" in text and "The draft is attached." in text
    assert "contract.docx skipped: archive bomb: member word/document.xml expands past" in caplog.text


def read_in_subprocess(path: Path) -> str:
    """:func:`read` in a fresh interpreter with a timeout: code that would run for hours fails."""
    code = ("import sys; from pathlib import Path; from tests.index.test_archive_bombs import read; "
            "print(read(Path(sys.argv[1])))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout


def test_members_read_again_and_again_count_against_the_total(tmp_path: Path, monkeypatch) -> None:
    """An e-book whose spine lists one chapter (under every per-member limit, at a plausible
    ratio) 100 times; the total is lowered from 512 MB to 20 MB to keep the test quick."""
    monkeypatch.setattr(archive, "LIMITS", replace(archive.LIMITS, total_bytes=20 << 20))
    chapter = b"<html><body><p>" + random.Random(0).randbytes(2 << 20).hex().encode() + b"</p></body></html>"
    opf = ('<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><manifest>'
           '<item id="c1" href="one.xhtml" media-type="application/xhtml+xml"/></manifest><spine>'
           + '<itemref idref="c1"/>' * 100 + '</spine></package>').encode()
    members = {m.name: m for m in members_of(good(tmp_path, "epub"))}
    members["OEBPS/content.opf"] = deflated("OEBPS/content.opf", opf)
    members["OEBPS/one.xhtml"] = deflated("OEBPS/one.xhtml", chapter)
    bomb = write_zip(tmp_path / "again.epub", list(members.values()))
    refused(bomb, "archive bomb: its members expand past 20 MB in all")


def test_a_package_listing_a_million_chapters_is_refused(tmp_path: Path) -> None:
    opf = ('<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><manifest>'
           '<item id="c1" href="one.xhtml" media-type="application/xhtml+xml"/></manifest><spine>'
           + '<itemref idref="c1"/>' * 1_000_000 + '</spine></package>').encode()
    bomb = with_member(good(tmp_path, "epub"), tmp_path / "spine.epub", deflated("OEBPS/content.opf", opf))
    refused(bomb, "archive bomb: OEBPS/content.opf lists more than 10000 items")


def test_text_without_headings_and_long_headings_stay_bounded(tmp_path: Path) -> None:
    """An .odt of 20,000 paragraphs and no heading comes as sections of at most max_chars (it
    was held and joined whole); a heading of 100,000 characters is cut in the location."""
    paragraphs = "".join(f"<text:p>paragraph {n} of the long document.</text:p>" for n in range(20_000))
    xml = ('<?xml version="1.0"?><office:document-content '
           'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
           'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>'
           f'<text:h text:outline-level="1">{"long " * 20_000}</text:h>{paragraphs}'
           '</office:text></office:body></office:document-content>').encode()
    odt = write_zip(tmp_path / "long.odt", [deflated("content.xml", xml)])
    with open(odt, "rb") as handle:
        sections = list(reader_for(odt).read(handle, None, 4000))
    assert len(sections) > 100 and all(len(s.text) <= 4000 for s in sections)
    assert all(s.location is not None and len(s.location) <= 200 for s in sections)
    assert "paragraph 19999 of the long document." in sections[-1].text


@pytest.mark.slow
def test_bombs_are_skipped_in_bounded_memory_and_the_good_files_indexed(tmp_path: Path) -> None:
    """The real `rt index` on a bomb of each format beside good files, its peak RSS measured
    (before: python-docx alone held the 1 GB member, past 2 GB)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("ru_maxrss units differ")
    docs, work = tmp_path / "docs", tmp_path / "work"
    docs.mkdir()
    work.mkdir()
    for kind, (_, member) in FORMATS.items():
        good(docs, kind)
        with_member(good(work, kind), docs / f"bomb.{kind}", bomb_member(member, 1000))
    with_member(good(work, "docx"), docs / "lie.docx", bomb_member("word/document.xml", 1000, declared=1000))
    with_member(good(work, "xlsx"), docs / "lie.xlsx", bomb_member("xl/sharedStrings.xml", 1000, declared=1000))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(MEASURE), "index", str(docs),
                          "--index", str(tmp_path / "ix"), "--json", "--no-progress"],
                         cwd=REPO, capture_output=True, text=True, check=True, timeout=600)
    result = json.loads(out.stdout)
    assert result["rc"] == 0, result["stderr"]
    report = json.loads(result["stdout"])
    assert sorted(Path(p).name for p in report["added"]) == sorted(f"good.{kind}" for kind in FORMATS)
    problems = {Path(p["path"]).name: p["reason"] for p in report["problems"]}
    assert set(problems) == {*(f"bomb.{kind}" for kind in FORMATS), "lie.docx", "lie.xlsx"}
    for name, reason in problems.items():
        assert reason.startswith("archive bomb: member "), (name, reason)
    assert "expands past" in problems["lie.docx"] and "declares 1000 MB" in problems["bomb.docx"]
    assert "bomb.docx: archive bomb: member word/document.xml declares" in result["stderr"]
    assert result["peak"] < PEAK_RSS_BOUND, f"peak RSS {result['peak'] / 1e9:.2f} GB"
