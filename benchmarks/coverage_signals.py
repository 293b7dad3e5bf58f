"""Which cheap signals tell a question about an indexed document from one about an absent
document of the same kind (issue 18 §3), on the DEV split of :mod:`benchmarks.eval_data` only.

Run: ``python benchmarks/coverage_signals.py [--split dev]``

For every dev question (answerable: about an indexed post; unanswerable: about a held-out post)
the index is searched as ``rt ask`` searches it, and each candidate signal is computed from the
hits, a dense-only and a keyword-only search and the index's one idf
(:func:`runtime.index.terms.idf`). Printed per signal: its AUC (the chance that an answerable
question scores higher than an unanswerable one; 0.5 is a coin) and both classes' means. A
signal worth adding to the rule must beat the rule's own score, and must add to it in a
combination (docs/asking.md has the figures and what was kept: ``margin``).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_answers import open_index  # noqa: E402
from benchmarks.eval_data import load_eval_set  # noqa: E402
from runtime.rag.config import CoverageOptions  # noqa: E402
from runtime.rag.coverage import informative_terms, measure, signal_score  # noqa: E402

_WORD = re.compile(r"\w+")


def _z(first: float, rest: list[float]) -> float:
    return (first - statistics.fmean(rest)) / (statistics.pstdev(rest) + 1e-6) if len(rest) > 2 else 0.0


def signals(index: Any, question: str) -> dict[str, float | None]:
    """Every candidate signal of ``question`` (see the module docstring)."""
    k = index.default_k
    hits = index.search(question, 20)
    top = hits[:k]
    measured = measure(question, top, index)
    dense = index.search(question, 1, mode="dense")
    keyword = index.keyword_search(question, 20)
    terms = informative_terms(question)
    idf = index.idf(terms)
    holding = index.chunks_holding(terms, [h.chunk_id for h in top])
    rarest = sorted(terms, key=lambda t: -idf[t])[:2]
    names = [w for n, w in enumerate(_WORD.findall(question))
             if (n > 0 and w[:1].isupper() and w != "I") or any(c.isdigit() for c in w)]
    scores = [h.score for h in hits]
    similarities = [h.similarity or 0.0 for h in hits]
    return {
        "rule score (default weights)": signal_score(measured, CoverageOptions()),
        "best_similarity": measured["best_similarity"],
        "term_share": measured["term_share"],
        "term_coverage": measured["term_coverage"],
        "margin (first - second score)": measured["margin"],
        "score z (first vs the other 19)": _z(scores[0], scores[1:]),
        "similarity margin (first - mean of rest)": similarities[0] - statistics.fmean(similarities[1:]),
        "keyword best BM25": keyword[0][1] if keyword else 0.0,
        "keyword z (first vs the other 19)": _z(keyword[0][1], [s for _, s in keyword[1:]]) if keyword else 0.0,
        "dense and keyword agree on the first chunk": float(bool(keyword and dense)
                                                            and keyword[0][0] == dense[0].chunk_id),
        "two rarest terms together in one chunk": (max(sum(h.chunk_id in holding[t] for t in rarest) / len(rarest)
                                                       for h in top) if rarest else 0.0),
        "share of names and numbers in one chunk": (max(sum(n.lower() in h.text.lower() for n in names) / len(names)
                                                        for h in top) if names else None),
        "missing_share (negated)": -measured["missing_share"],
    }


def auc(positive: list[float], negative: list[float]) -> float:
    pairs = [(p > n) + 0.5 * (p == n) for p in positive for n in negative]
    return sum(pairs) / len(pairs) if pairs else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["dev", "test"], default="dev", help="tune on dev only")
    args = parser.parse_args()
    data = load_eval_set()
    index = open_index(data)
    questions = list(getattr(data, args.split)) + list(getattr(data, f"unanswerable_{args.split}"))
    rows = [(signals(index, q.text), q.answerable) for q in questions]
    print(f"{args.split}: {sum(a for _, a in rows)} answerable, {sum(not a for _, a in rows)} unanswerable")
    table = []
    for name in rows[0][0]:
        yes = [v for s, a in rows if a and (v := s[name]) is not None]
        no = [v for s, a in rows if not a and (v := s[name]) is not None]
        table.append((auc(yes, no), name, len(yes), len(no), statistics.fmean(yes), statistics.fmean(no)))
    for value, name, n_yes, n_no, mean_yes, mean_no in sorted(table, reverse=True):
        print(f"  {name:44s} AUC {value:.3f}  ({n_yes}/{n_no} questions; mean {mean_yes:.3f} / {mean_no:.3f})")
    index.close()


if __name__ == "__main__":
    main()
