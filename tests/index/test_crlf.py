"""Text saved by Notepad or exported by Office (CRLF line ends) chunks and searches as LF text."""

from __future__ import annotations

import io
import re
import sqlite3
from pathlib import Path

import pytest

from runtime.index import Index
from runtime.index.chunking import chunk_section
from runtime.index.readers import Section, read_html, read_plain, read_plain_stream, text_blocks
from runtime.index.store import DB_NAME
from tests.index.corpus import QUESTIONS, TEXT_FILES, write_corpus

NOTES = (
    "# Boiler\n\nThe pressure should read 1.2 bar. Top it up at the grey valve.\n\n"
    "Error F.28 means no ignition.\nCall the installer.\n\n"
    "Warranty\n========\n\nFive years from 2019, with a yearly service.\n"
)


def _words(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]


def _chunks(sections: list[Section], budget: int = 12) -> list[tuple[str, tuple[int, int] | None]]:
    return [(c.text, c.lines) for s in sections for c in chunk_section(s, _words, budget, 0)]


@pytest.mark.parametrize("eol", ["\r\n", "\r"])
def test_crlf_and_cr_files_read_and_chunk_as_the_lf_file(eol: str) -> None:
    lf = read_plain(NOTES.encode())
    other = read_plain(NOTES.replace("\n", eol).encode())
    assert other.sections == lf.sections  # same text, same line anchors
    chunks = _chunks(list(lf.sections))
    assert _chunks(list(other.sections)) == chunks
    assert len(chunks) == 5 and chunks[0] == ("# Boiler\n\nThe pressure should read 1.2 bar.", (1, 3))
    assert ("Warranty\n========", (8, 9)) in chunks  # the heading is seen, its lines right


def test_a_crlf_split_between_two_read_blocks_is_one_line_end() -> None:
    data = "one\r\ntwo\r\n\r\nthree\rfour\r".encode()
    for size in range(1, len(data) + 1):
        assert "".join(text_blocks(io.BytesIO(data), "utf-8", block_bytes=size)) == "one\ntwo\n\nthree\nfour\n"
    utf16 = "a\r\nb\r\n".encode("utf-16")
    assert "".join(text_blocks(io.BytesIO(utf16), "utf-16", block_bytes=3)) == "a\nb\n"


def test_streamed_sections_of_a_crlf_file_keep_their_line_numbers() -> None:
    text = "".join(f"Line {n} says something.\n" + ("\n" if n % 5 == 0 else "") for n in range(1, 200))
    lf = list(read_plain_stream(io.BytesIO(text.encode()), "utf-8", 300))
    crlf = list(read_plain_stream(io.BytesIO(text.replace("\n", "\r\n").encode()), "utf-8", 300))
    assert crlf == lf
    assert _chunks(crlf, 20) == _chunks(lf, 20)
    last_text, last_lines = _chunks(crlf, 20)[-1]
    assert last_text.endswith("Line 199 says something.") and last_lines is not None and last_lines[1] == 238


def test_html_with_crlf_reads_as_with_lf() -> None:
    html = "<html>\n<body>\n<h1>Boiler</h1>\n<p>Pressure 1.2 bar.</p>\n<p>Error F.28.</p>\n</body>\n</html>\n"
    assert read_html(html.replace("\n", "\r\n").encode()).sections == read_html(html.encode()).sections


def test_a_section_that_still_holds_crlf_is_cut_at_its_paragraphs_and_headings() -> None:
    # Sections made outside the readers (a format library's text) can carry CRLF themselves.
    lf, crlf = Section(NOTES), Section(NOTES.replace("\n", "\r\n"))
    assert [t.replace("\r\n", "\n") for t, _ in _chunks([crlf])] == [t for t, _ in _chunks([lf])]


def _index_rows(folder: Path, root: Path) -> list[tuple[object, ...]]:
    db = sqlite3.connect(folder / DB_NAME)
    try:
        rows = db.execute("SELECT d.path, c.ordinal, c.text, c.page, c.line_start, c.line_end, c.char_start, "
                          "c.char_end, c.n_tokens FROM chunks c JOIN documents d ON d.id = c.document_id "
                          "ORDER BY d.path, c.ordinal").fetchall()
    finally:
        db.close()
    return [(str(Path(row[0]).relative_to(root)), *row[1:]) for row in rows]


def test_crlf_and_lf_copies_of_a_corpus_give_the_same_chunks_and_search_results(
        tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    lf_root = write_corpus(tmp_path / "lf")
    crlf_root = write_corpus(tmp_path / "crlf")
    for relative in TEXT_FILES:
        path = crlf_root / relative
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    cafe = crlf_root / "notes" / "cafe.txt"
    cafe.write_bytes(cafe.read_bytes().replace(b"\n", b"\r\n"))
    assert b"\r\n" in (crlf_root / "home" / "lease.md").read_bytes()

    results = {}
    for name, root in (("lf", lf_root), ("crlf", crlf_root)):
        folder = tmp_path / f"index-{name}"
        with Index.open(folder, create=True, embedder=embedder) as index:
            report = index.add([root])
            assert not report.problems and not report.skipped, report.summary()
            hits = [[(str(Path(h.path).relative_to(root)), h.text, h.lines, h.chars, round(h.score, 4))
                     for h in index.search(question, 3)] for question, _, _ in QUESTIONS]
        results[name] = (_index_rows(folder, root), hits)
    lf_rows, lf_hits = results["lf"]
    crlf_rows, crlf_hits = results["crlf"]
    assert len(lf_rows) > len(TEXT_FILES)  # the files were cut at their paragraphs, not one block each
    assert crlf_rows == lf_rows
    assert crlf_hits == lf_hits
    assert all("\r" not in row[2] for row in crlf_rows)  # type: ignore[operator]
