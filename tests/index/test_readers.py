"""Readers and chunking: decoding, HTML and PDF text with locations, token-measured chunks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runtime.index.chunking import chunk_section
from runtime.index.readers import (
    BinaryFileError,
    Section,
    UnreadableFileError,
    decode_text,
    read_html,
    read_pdf,
    read_plain,
    reader_for,
)
from tests.index.corpus import HEALTH_HTML, LEASE, write_pdf


def words(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]


def test_decoding_utf8_bom_utf16_cp1252_and_failures() -> None:
    assert decode_text("Grüße".encode()) == ("Grüße", "utf-8")
    assert decode_text(b"\xef\xbb\xbfhi") == ("hi", "utf-8-sig")
    assert decode_text("Grüße".encode("utf-16")) == ("Grüße", "utf-16")
    assert decode_text("Café crème".encode("cp1252")) == ("Café crème", "cp1252")
    with pytest.raises(BinaryFileError):
        decode_text(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(UnreadableFileError, match="not UTF-8"):
        decode_text(b"\x81\x8d\x8f\x90 undefined in cp1252")
    with pytest.raises(BinaryFileError):
        reader_for(Path("photo.JPG"))


def test_html_keeps_visible_text_headings_and_source_lines() -> None:
    section = read_html(HEALTH_HTML.encode()).sections[0]
    assert "zebra" not in section.text and "font:" not in section.text  # script and style dropped
    assert "# Vaccination record: Alex Rivera" in section.text
    offset = section.text.index("penicillin")
    source_line = next(i for i, line in enumerate(HEALTH_HTML.splitlines(), 1) if "penicillin" in line)
    assert section.line_at(offset) == source_line


def test_pdf_pages_are_sections(tmp_path: Path) -> None:
    pdf = tmp_path / "p.pdf"
    write_pdf(pdf, [("First", ["alpha text"]), ("Second", ["beta text"]), ("Third", ["gamma text"])])
    document = read_pdf(pdf.read_bytes())
    assert [s.page for s in document.sections] == [1, 2, 3]
    assert "beta" in document.sections[1].text and "beta" not in document.sections[0].text
    with pytest.raises(UnreadableFileError):
        read_pdf(b"%PDF-1.4 this is not really a pdf")


def test_chunks_are_exact_slices_within_budget_with_overlap() -> None:
    text = LEASE + "\n\n" + " ".join(f"Clause {i} says the tenant waters plant {i}." for i in range(80))
    section = read_plain(text.encode()).sections[0]
    chunks = chunk_section(section, words, budget=60, overlap=12)
    assert len(chunks) > 5
    lines = text.split("\n")
    for chunk in chunks:
        start, end = chunk.chars
        assert text[start:end] == chunk.text
        assert chunk.n_tokens == len(words(chunk.text)) <= 60
        assert chunk.lines is not None and chunk.text.split("\n")[0] in lines[chunk.lines[0] - 1]
    covered: set[int] = set()
    for chunk in chunks:
        covered.update(range(*chunk.chars))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())  # nothing lost
    long_tail = [c for c in chunks if c.text.startswith("Clause") or "Clause" in c.text]
    assert any(a.chars[1] > b.chars[0] for a, b in zip(long_tail, long_tail[1:]))  # overlap


def test_headings_start_chunks() -> None:
    section = read_plain(LEASE.encode()).sections[0]
    chunks = chunk_section(section, words, budget=120, overlap=20)
    starts = [c.text.split("\n")[0] for c in chunks]
    assert "## Rent and deposit" in starts and "## Repairs" in starts


def test_chunks_fit_the_model_in_its_own_tokens(embedder) -> None:  # type: ignore[no-untyped-def]
    text = "\n\n".join([LEASE] * 4) + " ".join(["Antidisestablishmentarianism"] * 400)
    chunks = chunk_section(Section(text, None, None), embedder.token_offsets, 254, 40)
    tokenizer = embedder.model.tokenizer
    for chunk in chunks:
        assert len(tokenizer(chunk.text)["input_ids"]) <= embedder.max_tokens
    assert max(c.n_tokens for c in chunks) > 200  # the budget is actually used
