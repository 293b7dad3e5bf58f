"""Sentence-level term coverage: real FTS5 matching (porter stemming) and its effect on ranking."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runtime.index import Index, IndexOptions
from runtime.index.proximity import best_sentence_share, match_offsets, sentence_shares, sentence_starts

SCATTERED = ("The warranty card is in the box. Battery packs are sold separately in most shops. "
             "Replacement parts ship within a week. Keep the warranty card with the receipt. "
             "Battery life varies with use. Replacement cables are available too.")
TOGETHER = ("A battery replacement under warranty is free of charge at any service point. "
            "Opening hours are nine to five on weekdays.")


def test_sentences_end_at_end_punctuation_and_blank_lines_not_at_wrapped_lines() -> None:
    text = "First one. Second one? Third\n\nFourth: still fourth; yes. A line\nwrapped. v1.2 stays whole"
    starts = sentence_starts(text)
    pieces = [text[a:b].strip() for a, b in zip(starts, [*starts[1:], len(text)])]
    assert pieces == ["First one.", "Second one?", "Third", "Fourth: still fourth; yes.", "A line\nwrapped.",
                      "v1.2 stays whole"]


def test_best_sentence_share_weighs_words_found_together() -> None:
    starts = [0, 20, 40]
    weights = {"rare": 3.0, "common": 1.0}
    assert best_sentence_share(starts, {"rare": [5], "common": [25]}, weights) == pytest.approx(0.75)
    assert best_sentence_share(starts, {"rare": [5], "common": [10]}, weights) == pytest.approx(1.0)
    assert best_sentence_share(starts, {}, weights) == 0.0


@pytest.fixture
def two_chunk_index(tmp_path: Path, embedder) -> Path:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "scattered.txt").write_text(SCATTERED, encoding="utf-8")
    (docs / "together.txt").write_text(TOGETHER, encoding="utf-8")
    (docs / "other.txt").write_text("Descaling the kettle every month keeps it quiet. Use vinegar.",
                                    encoding="utf-8")
    folder = tmp_path / "ix"
    with Index.open(folder, create=True, embedder=embedder) as index:
        index.add([docs])
    return folder


def test_words_are_matched_with_the_index_stemmer(two_chunk_index: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    with Index.open(two_chunk_index, embedder=embedder) as index:
        rows = {Path(h.path).name: h for h in index.search("kettle", 3, mode="keyword")}
        kettle = rows["other.txt"]
        with index.store.transaction(write=False):
            offsets = match_offsets(index.store, "descaled", [kettle.chunk_id])  # stem of "Descaling"
            found = sentence_shares(index.store, "Is the kettle descaled?", {kettle.chunk_id: kettle.text})
            partly = sentence_shares(index.store, "How often is the kettle descaled?", {kettle.chunk_id: kettle.text})
            form = sentence_shares(index.store, "How much is the kettle descaled?", {kettle.chunk_id: kettle.text})
    assert [kettle.text[o:o + 9] for o in offsets[kettle.chunk_id]] == ["Descaling"]
    assert found[kettle.chunk_id] == pytest.approx(1.0)  # both words in its first sentence
    assert 0 < partly[kettle.chunk_id] < 0.5  # "often" is in no chunk: the rarest, and missing
    assert form[kettle.chunk_id] == pytest.approx(1.0)  # "how much" is the question's form, not its subject


def test_a_chunk_holding_the_words_in_one_sentence_ranks_first(two_chunk_index: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    query = "battery replacement warranty"
    with Index.open(two_chunk_index, embedder=embedder) as index:
        # a fusion that leans on BM25, which counts occurrences wherever they stand
        index.options = dataclasses.replace(index.options, dense_weight=0.4, sentence_weight=0.0)
        without = [Path(h.path).name for h in index.search(query, 2)]
        index.options = dataclasses.replace(index.options, sentence_weight=IndexOptions().sentence_weight)
        with_sentences = [Path(h.path).name for h in index.search(query, 2)]
    assert without[0] == "scattered.txt"
    assert with_sentences[0] == "together.txt"
