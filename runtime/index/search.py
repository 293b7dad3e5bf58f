"""Ranking helpers: reciprocal rank fusion of the dense and keyword candidate lists."""

from __future__ import annotations

from collections.abc import Sequence


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
