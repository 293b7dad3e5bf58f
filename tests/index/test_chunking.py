"""Chunk boundaries in hard-wrapped prose (AsciiDoc, RFC-style text, mail, notes): a chunk ends at
a sentence's end and the next one's overlap starts at a sentence's start, not at a line wrap."""

from __future__ import annotations

import re
import sqlite3
import textwrap
from pathlib import Path

from runtime.index import Index, IndexOptions
from runtime.index.chunking import chunk_section, holds_heading
from runtime.index.readers import Section, read_plain


def words(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]


SENTENCES = [f"Step {i} of the rebase replays commit number {i} onto the new base, and stops "
             f"when that commit conflicts with the upstream branch." for i in range(1, 13)]
WRAPPED = textwrap.fill(" ".join(SENTENCES), width=44)  # one paragraph, lines cut mid-sentence


def test_chunks_of_wrapped_prose_end_and_start_at_sentences() -> None:
    section = read_plain(WRAPPED.encode()).sections[0]
    chunks = chunk_section(section, words, budget=80, overlap=30)
    assert len(chunks) >= 4
    for chunk in chunks[:-1]:
        assert chunk.text.endswith("upstream branch."), chunk.text[-40:]
    for chunk in chunks:
        assert chunk.text.startswith("Step "), chunk.text[:40]
        assert WRAPPED[chunk.chars[0]:chunk.chars[1]] == chunk.text  # still an exact slice
    assert any(a.chars[1] > b.chars[0] for a, b in zip(chunks, chunks[1:]))  # and still overlapping


def test_crlf_wrapped_prose_is_chunked_at_sentences_too() -> None:
    # the readers give "\n" line ends, but a section made elsewhere may keep Windows' CRLF
    text = WRAPPED.replace("\n", "\r\n")
    chunks = chunk_section(Section(text, None, None), words, budget=80, overlap=30)
    assert len(chunks) >= 4 and all(c.text.startswith("Step ") for c in chunks)
    assert all(c.text.endswith("upstream branch.") for c in chunks[:-1])


def test_a_sentence_longer_than_half_a_chunk_is_still_cut() -> None:
    # no sentence end inside the budget: the chunk is cut where it fills, as before
    text = textwrap.fill(" ".join(f"word{i}" for i in range(400)) + ".", width=50)
    chunks = chunk_section(read_plain(text.encode()).sections[0], words, budget=60, overlap=12)
    assert len(chunks) > 5 and all(c.n_tokens <= 60 for c in chunks)


def test_headings_are_recognised_in_markdown_and_underlined_form() -> None:
    assert holds_heading("Some text.\n\n## Options\n\nMore.")
    assert holds_heading("OPTIONS\n-------\n--onto <newbase>::\n\tStarting point.")
    assert not holds_heading("Plain text.\n\n----\ncode\n----")


def _chunk_texts(index: Index) -> list[str]:
    ids = [i for ids in index.chunk_ids_by_document().values() for i in ids]
    return [row.text for row in index.chunks(ids).values()]


def test_an_index_keeps_the_chunking_it_was_built_with_until_rebuilt(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    docs, folder = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "steps.txt").write_text(WRAPPED, encoding="utf-8")
    options = IndexOptions(chunk_tokens=80, overlap_tokens=30)
    with Index.open(folder, create=True, embedder=embedder, options=options):
        pass
    with sqlite3.connect(folder / "index.sqlite") as db:  # as an index made before chunker 2 was recorded
        db.execute("DELETE FROM meta WHERE key = 'chunker'")
    with Index.open(folder, embedder=embedder) as old:
        assert old.options.chunker == 1
        old.add([docs])
        assert not all(text.startswith("Step ") for text in _chunk_texts(old))  # no mix: chunked as before
    with Index.open(folder, rebuild=True, embedder=embedder, options=options) as rebuilt:
        rebuilt.add([docs])
        assert rebuilt.options.chunker == 2
        assert all(text.startswith("Step ") for text in _chunk_texts(rebuilt))
    with Index.open(folder, embedder=embedder) as reopened:
        assert reopened.options.chunker == 2


def test_a_crlf_line_end_is_one_line_end_not_a_blank_line() -> None:
    """``\\r\\n?`` let a pattern take a CRLF's "\\r" and "\\n" as two line ends, so one CRLF read as
    a blank line: an underlined heading was no heading and every line a paragraph of its own."""
    lf = "OPTIONS\n-------\n--onto <newbase>::\n\tStarting point.\n"
    assert holds_heading(lf) and holds_heading(lf.replace("\n", "\r\n"))
    text = "Step one rebases the branch\nonto its upstream. Step two\nresolves each conflict.\n\nStep three pushes."
    as_lf = [c.text for c in chunk_section(Section(text, None, None), words, budget=12, overlap=0)]
    as_crlf = [c.text.replace("\r\n", "\n")
               for c in chunk_section(Section(text.replace("\n", "\r\n"), None, None), words, budget=12, overlap=0)]
    assert as_crlf == as_lf
