"""The search: dense and keyword candidates from a store's snapshot, fused, rescored by sentence,
as :class:`Hit` objects (:meth:`runtime.index.Index.search` adds the embedder and a reranker)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.index.config import IndexOptions
from runtime.index.fusion import reciprocal_rank_fusion, weighted_fusion
from runtime.index.proximity import sentence_shares
from runtime.index.stores.base import IndexStore

__all__ = ["Hit", "ranked_hits", "reciprocal_rank_fusion", "repair_text", "weighted_fusion"]

from runtime.text import repair_surrogates


@dataclass(frozen=True)
class Hit:
    """One search result, best first.

    ``score`` ranks hits within one search: the fused score in ``hybrid`` mode (see
    :func:`~runtime.index.fusion.weighted_fusion`),
    the cosine similarity in ``dense`` mode, BM25 in ``keyword`` mode. ``similarity`` is the
    cosine similarity between the query and this chunk (in every mode that embeds the query,
    ``None`` in ``keyword``): the number to threshold on when asking "does anything answer this?".
    ``chars`` is the chunk's character span in the page (PDF) or the decoded file.
    """

    text: str
    path: str
    page: int | None
    lines: tuple[int, int] | None
    score: float
    chunk_id: int
    similarity: float | None = None
    chars: tuple[int, int] | None = None
    location: str | None = None  # "slide 7", "Sheet1 rows 2-40", a heading path; None for text and PDF


def ranked_hits(store: IndexStore, query: str, query_vector: np.ndarray | None, mode: str, first: int,
                options: IndexOptions) -> list[Hit]:
    """The ``first`` best hits for ``query`` in ``mode`` (hybrid, dense, keyword); the query's
    vector is ``None`` in keyword mode. Call inside a read transaction of ``store``."""
    wanted = max(options.candidates, first)
    dense: list[tuple[int, float]] = []
    if query_vector is not None:
        dense = store.nearest(query_vector, wanted)
    keyword = store.keyword_search(query, wanted) if mode != "dense" else []
    if mode == "hybrid" and options.fusion == "weighted" and query_vector is not None:
        ranked = weighted_fusion(_cosines(store, dense, keyword, query_vector), keyword, options.dense_weight)
        ranked = _sentence_rescored(store, query, ranked, options)
    elif mode == "hybrid":
        ranked = reciprocal_rank_fusion([dense, keyword], options.rrf_k)
    else:
        ranked = dense or keyword
    return _hits(store, ranked[:first], query_vector)


def _sentence_rescored(store: IndexStore, query: str, ranked: list[tuple[int, float]],
                   options: IndexOptions) -> list[tuple[int, float]]:
    """The first ``sentence_candidates`` of ``ranked`` with ``sentence_weight`` times their
    best sentence's share of the query's words added, re-sorted; the rest (lower already) after."""
    weight, n = options.sentence_weight, options.sentence_candidates
    if weight <= 0 or n <= 0 or not ranked:
        return ranked
    head = ranked[:n]
    texts = {chunk_id: row.text for chunk_id, row in store.chunks_for([i for i, _ in head]).items()}
    shares = sentence_shares(store, query, texts)
    rescored = [(chunk_id, score + weight * shares.get(chunk_id, 0.0)) for chunk_id, score in head]
    rescored.sort(key=lambda pair: (-pair[1], pair[0]))
    return rescored + ranked[n:]


def _cosines(store: IndexStore, dense: list[tuple[int, float]], keyword: list[tuple[int, float]],
         query_vector: np.ndarray) -> dict[int, float]:
    """Cosine similarity of every candidate: FAISS's for the dense ones, computed from the
    stored vectors for those only the keyword search found."""
    cosines = dict(dense)
    missing = [i for i, _ in keyword if i not in cosines]
    for chunk_id, vector in store.vectors_for(missing, query_vector.shape[0]).items():
        cosines[chunk_id] = float(np.dot(vector, query_vector))
    return cosines


def _hits(store: IndexStore, ranked: list[tuple[int, float]], query_vector: np.ndarray | None) -> list[Hit]:
    ids = [i for i, _ in ranked]
    rows = store.chunks_for(ids)
    similarity: dict[int, float] = {}
    if query_vector is not None:
        stored = store.vectors_for(ids, query_vector.shape[0])
        similarity = {i: float(np.dot(v, query_vector)) for i, v in stored.items()}
    return [
        Hit(row.text, row.path, row.page, row.lines, score, chunk_id,
            similarity.get(chunk_id), row.chars, row.location)
        for chunk_id, score in ranked if (row := rows.get(chunk_id)) is not None
    ]


def repair_text(text: str) -> str:
    """``text`` with what is not valid Unicode (bytes that were not UTF-8 in a command-line
    argument, which Python keeps as lone surrogates) replaced by U+FFFD.

    Such text cannot be tokenized, stored or printed; a query with one bad byte should still
    find what its other words match.
    """
    return repair_surrogates(text)
