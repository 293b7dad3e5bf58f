"""Retrieval quality on the hand-written corpus: recall@3 must be 1.0; hybrid >= either alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.errors import ConfigError, IndexMismatchError
from runtime.index import Hit, Index, IndexOptions
from runtime.index.vectors import VectorIndex
from tests.hashing_embedder import HashingEmbedder
from tests.index.corpus import QUESTIONS


def first_rank(hits: list[Hit], corpus_dir: Path, relative: str, passage: str) -> int | None:
    target = str(corpus_dir / relative)
    for rank, hit in enumerate(hits, start=1):
        if hit.path == target and passage in hit.text:
            return rank
    return None


def evaluate(index: Index, corpus_dir: Path, mode: str) -> dict[str, float]:
    ranks = [first_rank(index.search(q, 10, mode=mode), corpus_dir, f, p) for q, f, p in QUESTIONS]
    n = len(ranks)
    return {
        "recall@1": sum(r == 1 for r in ranks) / n,
        "recall@3": sum(r is not None and r <= 3 for r in ranks) / n,
        "mrr": sum(1 / r for r in ranks if r) / n,
        "misses@3": [q for (q, _, _), r in zip(QUESTIONS, ranks) if not r or r > 3],  # type: ignore[dict-item]
    }


def test_recall_per_mode_and_hybrid_is_at_least_as_good(any_corpus_index: str, corpus_dir: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    assert len(QUESTIONS) >= 20
    with Index.open(any_corpus_index, embedder=embedder) as index:
        results = {mode: evaluate(index, corpus_dir, mode) for mode in ("hybrid", "dense", "keyword")}
    for mode, r in results.items():
        print(f"{mode:8s} recall@1 {r['recall@1']:.3f}  recall@3 {r['recall@3']:.3f}  MRR {r['mrr']:.3f}"
              f"  ({len(QUESTIONS)} questions)")
    hybrid = results["hybrid"]
    assert hybrid["recall@3"] == 1.0, hybrid["misses@3"]
    for other in ("dense", "keyword"):
        for metric in ("recall@1", "recall@3", "mrr"):
            assert hybrid[metric] >= results[other][metric], (metric, other, results)


def test_hits_carry_sources_and_similarity(any_corpus_index: str, corpus_dir: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    with Index.open(any_corpus_index, embedder=embedder) as index:
        assert index.default_k == IndexOptions().k
        pdf_hit = index.search("deductible per claim", 1)[0]
        assert pdf_hit.path.endswith("policy.pdf") and pdf_hit.page == 3 and pdf_hit.lines is None
        md_hit = index.search("Which chain was put on the Gazelle?", 1)[0]
        assert md_hit.page is None and md_hit.lines is not None
        source = Path(md_hit.path).read_text().splitlines()
        assert "CN-HG71" in "\n".join(source[md_hit.lines[0] - 1:md_hit.lines[1]])
        assert md_hit.similarity is not None and 0 < md_hit.similarity <= 1
        keyword_hit = index.search("Gazelle chain", 1, mode="keyword")[0]
        assert keyword_hit.similarity is None and keyword_hit.score > 0
        dense_hits = index.search("Gazelle chain", 3, mode="dense")
        assert [h.score for h in dense_hits] == sorted((h.score for h in dense_hits), reverse=True)
        assert all(abs(h.score - (h.similarity or 0)) < 1e-4 for h in dense_hits)
        # The threshold the RAG answer uses: answered questions score well above unrelated ones.
        answered = min(index.search(q, 1)[0].similarity or 0 for q, _, _ in QUESTIONS)
        unrelated = max(index.search(q, 1)[0].similarity or 0 for q in (
            "What is the capital of Australia?", "Who won the football world cup in 2014?",
            "Explain quantum chromodynamics on a lattice."))
        print(f"lowest similarity of an answered question {answered:.3f}, highest unrelated {unrelated:.3f}")
        assert unrelated < 0.25 < answered  # runtime.rag.rag.DEFAULT_THRESHOLD is 0.25
        with pytest.raises(ConfigError, match="unknown search mode"):
            index.search("x", mode="semantic")


def test_another_dimension_is_refused(corpus_index: Path) -> None:
    impostor = HashingEmbedder(name="all-MiniLM-L6-v2", dimension=16)
    with Index.open(corpus_index, embedder=impostor) as index:
        assert index.search("rent", 1, mode="keyword")  # keyword search needs no vectors
        with pytest.raises(IndexMismatchError, match="384-dimensional.*16-dimensional"):
            index.search("rent", 1)
    with pytest.raises(IndexMismatchError, match="built with embedding model all-MiniLM-L6-v2"):
        Index.open(corpus_index, embedder=HashingEmbedder())


def test_hnsw_finds_what_flat_finds() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(10, 3010, dtype=np.int64)
    flat, hnsw = VectorIndex.build(ids, vectors, "flat"), VectorIndex.build(ids, vectors, "hnsw")
    overlap = 0
    for query in vectors[:50] + 0.05 * rng.normal(size=(50, 64)).astype(np.float32):
        exact = {i for i, _ in flat.search(query, 10)}
        overlap += len(exact & {i for i, _ in hnsw.search(query, 10)})
    assert overlap / 500 >= 0.9
    assert flat.search(vectors[5], 1)[0][0] == 15


def test_hnsw_index_end_to_end(tmp_path: Path, corpus_dir: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    options = IndexOptions(vector_index="hnsw")
    with Index.open(tmp_path / "ix", create=True, embedder=embedder, options=options) as index:
        index.add([corpus_dir / "home"])
        assert index.stats().vector_index == "hnsw"
        assert index.search("What does boiler error F.28 mean?", 1)[0].path.endswith("boiler.txt")
    with Index.open(tmp_path / "ix", embedder=embedder) as index:  # the recorded kind wins
        assert index.options.vector_index == "hnsw"
        assert index.search("security deposit", 1, mode="dense")[0].path.endswith("lease.md")


def test_the_default_model_by_name_or_folder_matches(corpus_index: Path, minilm_path: Path) -> None:
    for spec in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", str(minilm_path)):
        with Index.open(corpus_index, embedding_model=spec) as index:
            assert index.embedding_model == "all-MiniLM-L6-v2"
