"""Term weights over an index's chunks: the one inverse document frequency rt uses.

Sentence rescoring (:mod:`runtime.index.proximity`), the coverage rule
(:mod:`runtime.rag.coverage`) and ``rt eval``'s word rarity all weigh words with :func:`idf`, so a
word is as rare to one as to the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from runtime.index.stores.base import TermStats


def idf(chunks_holding: int, n_chunks: int) -> float:
    """Smoothed inverse document frequency over chunks; a term found nowhere weighs the most.

    Never negative: ``chunks_holding <= n_chunks`` keeps the ratio above 1, and the clamp at 0
    only guards a count from a store caught between two commits. The coverage rule's weights
    were fitted with this formula (the two copies rt had, one clamped and one not, gave the
    same numbers for every count a store can return).
    """
    return max(math.log((n_chunks + 1) / (chunks_holding + 0.5)), 0.0)


def idf_weights(stats: TermStats, terms: Sequence[str]) -> dict[str, float]:
    """``term -> idf`` of each of ``terms`` over the chunks of ``stats``."""
    n_chunks = stats.counts()[1]
    return {term: idf(frequency, n_chunks) for term, frequency in stats.term_frequencies(terms).items()}
