"""Fusing the dense and keyword candidate lists into one ranking: weighted scores or reciprocal ranks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[tuple[int, float]]], k: int = 60
) -> list[tuple[int, float]]:
    """Fuse ranked ``(id, score)`` lists: each id scores ``sum(1 / (k + rank))`` (rank 1-based).

    Rank fusion needs no calibration between BM25 and cosine similarity, which live on
    unrelated scales. Exact ties are common with two lists (one retriever ranks A above B, the
    other B above A); they are broken by the sum of each list's score divided by that list's
    best score, so the retriever that is surer of its order decides.
    """
    fused: dict[int, float] = {}
    relative: dict[int, float] = {}
    for ranking in rankings:
        best = max((score for _, score in ranking), default=0.0)
        for rank, (chunk_id, score) in enumerate(ranking, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (k + rank)
            relative[chunk_id] = relative.get(chunk_id, 0.0) + (score / best if best > 0 else 0.0)
    order = sorted(fused, key=lambda i: (-round(fused[i], 12), -relative[i]))
    return [(chunk_id, fused[chunk_id]) for chunk_id in order]


def weighted_fusion(dense: Mapping[int, float], keyword: Sequence[tuple[int, float]],
                    dense_weight: float) -> list[tuple[int, float]]:
    """Fuse by score: ``dense_weight * cosine + (1 - dense_weight) * bm25 / best bm25``, best first.

    ``dense`` maps every candidate (those of both retrievers) to its cosine similarity with the
    query; ``keyword`` is the BM25 list, best first (a candidate absent from it scores 0 there).
    Unlike reciprocal ranks, scores keep how much better the first hit is than the second: on
    the SQuAD dev articles of benchmarks/eval_data.py this put the answering passage first for
    83% of dev questions against 75% with RRF (k=60), weight fitted on dev
    (benchmarks/bench_retrieval.py, docs/retrieval.md).
    """
    best = max((score for _, score in keyword), default=0.0)
    bm25 = {chunk_id: score / best for chunk_id, score in keyword} if best > 0 else {}
    fused = {chunk_id: dense_weight * cosine + (1.0 - dense_weight) * bm25.get(chunk_id, 0.0)
             for chunk_id, cosine in dense.items()}
    order = sorted(fused, key=lambda i: (-fused[i], i))
    return [(chunk_id, fused[chunk_id]) for chunk_id in order]
