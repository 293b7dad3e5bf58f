"""Do the indexed documents cover a question? Decided from the evidence, not from one cosine.

Cheap signals, computed on the CPU from what retrieval already produced plus a few FTS5
look-ups (:func:`measure`):

- ``best_similarity``: the cosine similarity of the best retrieved passage (dense search);
- ``term_share``: the share of the question's informative terms, weighted by their inverse
  document frequency over the index, that the best single retrieved passage holds. Names,
  numbers and rare words weigh most, so "Who is the president of the Auvergne region?" scores
  low on an index whose passages hold "president" and "region" but never "Auvergne";
- ``missing_terms``: informative question terms that occur nowhere in the index, and
  ``missing_share`` their share of the question's IDF weight;
- ``margin``: how far the first retrieved passage stands out, its search score less the
  second's (the fused score in hybrid search). A question about a document the index holds
  tends to have one passage far ahead; one about an absent document of the same kind finds
  several near-equal passages on its topic. On the Reddit dev split of
  ``benchmarks/eval_data.py`` (300 crowd questions, 100 about held-out posts) it tells the two
  apart better than any other cheap signal tried (AUC 0.713, similarity 0.662, key-term share
  0.638; docs/asking.md);
- ``term_coverage`` (all retrieved passages together) and ``keyword_best`` (FTS5's best BM25
  score, whose scale depends on the corpus) are reported too.

:func:`decide` combines them with the weights of :class:`~runtime.rag.config.CoverageOptions`
(``score = best_similarity + term_weight * term_share + margin_weight * margin``; the default
rule, fitted on the dev split of ``benchmarks/bench_answers.py``, gives the margin no weight and
``rt eval --calibrate`` fits one per index), and gives a :class:`Coverage` with a one-line reason. Where
:func:`needs_probe` says the model's own yes/no could change that, :func:`runtime.rag.probe.judge`
adds ``model_yes`` (its P(yes) read from the logits) and the score gains
``probe_weight * (model_yes - 0.5)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from runtime.index.terms import idf
from runtime.rag.config import CoverageOptions

if TYPE_CHECKING:
    from runtime.index import Hit, Index
    from runtime.index.stores.base import TermStats

__all__ = ["QUESTION_WORDS", "Coverage", "assess", "chunks_holding", "decide", "idf", "informative_terms",
           "measure", "needs_probe", "signal_score", "term_frequencies"]

# Words that say what kind of answer is wanted, not what it is about. They are dropped before
# weighting: in a small index their IDF is high only because few chunks are questions.
QUESTION_WORDS = frozenset(
    "a about above after again against all also am an and any are as at be because been before "
    "being below between both but by can could did do does doing done down during each either "
    "else ever few for from further get gets got had has have having he her here hers herself "
    "him himself his how i if in into is it its itself just kind know like long many may me "
    "might more most much must my myself name named no nor not now of off often on once one only "
    "or other our ours out over own per please same shall she should so some such tell than "
    "that the their theirs them themselves then there these they this those through to too "
    "type under until up upon us use used using very was way we well were what whatever when "
    "where whether which while who whom whose why will with within without would yes yet you "
    "your yours yourself".split()
)

_WORD = re.compile(r"\w+", re.UNICODE)


def informative_terms(question: str) -> list[str]:
    """The question's words that could name its subject: lower-cased, question words dropped,
    each once, in order. Single characters are kept only when they are digits."""
    words = (w.lower() for w in _WORD.findall(question))
    kept = (w for w in words if w not in QUESTION_WORDS and (len(w) > 1 or w.isdigit()))
    return list(dict.fromkeys(kept))


@dataclass(frozen=True)
class Coverage:
    """Whether the documents cover a question, why, and the numbers it was decided from."""

    covered: bool
    reason: str
    signals: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"covered": self.covered, "reason": self.reason, "signals": dict(self.signals)}


def term_frequencies(terms_of: TermStats, terms: Sequence[str]) -> dict[str, int]:
    """``term -> number of chunks holding it``, with the index's own keyword tokenizer (porter
    stemming, so "descaling" finds "descale")."""
    return terms_of.term_frequencies(terms)


def chunks_holding(terms_of: TermStats, terms: Sequence[str], ids: Sequence[int]) -> dict[str, set[int]]:
    """``term -> the chunks among ids that hold it``."""
    return terms_of.chunks_holding(terms, ids)


def measure(question: str, hits: Sequence[Hit], index: Index) -> dict[str, Any]:
    """The signals for ``question`` given the retrieved ``hits`` (see the module docstring)."""
    terms = informative_terms(question)
    _, n_chunks = index.counts()
    frequency = index.term_frequencies(terms)
    holding = index.chunks_holding(terms, [h.chunk_id for h in hits])
    weights = {t: idf(frequency.get(t, 0), n_chunks) for t in terms}
    total = sum(weights.values())
    missing = [t for t in terms if frequency.get(t, 0) == 0]
    per_passage = [sum(weights[t] for t in terms if h.chunk_id in holding[t]) for h in hits]
    found = [t for t in terms if holding[t]]
    keyword = index.keyword_search(question, 1)
    similarities = [h.similarity for h in hits if h.similarity is not None]
    return {
        "best_similarity": max(similarities) if similarities else None,
        "term_share": max(per_passage) / total if total > 0 and per_passage else None,
        "margin": round(hits[0].score - hits[1].score, 4) if len(hits) > 1 else None,
        "term_coverage": sum(weights[t] for t in found) / total if total > 0 else None,
        "terms": terms,
        "terms_found": found,
        "missing_terms": missing,
        "missing_share": sum(weights[t] for t in missing) / total if total > 0 else 0.0,
        "keyword_best": keyword[0][1] if keyword else None,
        "chunks": n_chunks,
    }


def signal_score(signals: dict[str, Any], options: CoverageOptions = CoverageOptions()) -> float:
    """``best_similarity + term_weight * term_share + margin_weight * margin`` (a missing signal
    counts 0): the rule's score before the model's own yes/no."""
    score = (signals.get("best_similarity") or 0.0) + options.term_weight * (signals.get("term_share") or 0.0)
    return score + options.margin_weight * (signals.get("margin") or 0.0)


def decide(signals: dict[str, Any], options: CoverageOptions = CoverageOptions()) -> Coverage:
    """Covered when :func:`signal_score` (plus the model's yes/no where it was asked) reaches
    ``min_score`` (without similarities, keyword search: ``term_share`` alone against ``min_term_share``), unless
    terms the index never mentions carry more than ``max_missing_share`` of the question's
    weight. The reason says which test failed, with the numbers."""
    best = signals.get("best_similarity")
    share = signals.get("term_share")
    missing = signals.get("missing_terms") or []
    if not signals.get("chunks") or (best is None and share is None):
        return Coverage(False, "the index holds no passage for this question", signals)
    if missing and signals.get("missing_share", 0.0) > options.max_missing_share:
        named = ", ".join(f'"{t}"' for t in missing[:3])
        return Coverage(False, f"the documents never mention {named}", signals)
    share = share or 0.0
    if best is None:
        if share < options.min_term_share:
            return Coverage(False, f"the best passage holds {share:.0%} of the question's key terms "
                                   f"(needs {options.min_term_share:.0%})", signals)
        return Coverage(True, f"the best passage holds {share:.0%} of the question's key terms", signals)
    score = best + options.term_weight * share
    facts = (f"the best passage is {best:.2f} similar to the question and holds {share:.0%} of its "
             f"key terms")
    if options.margin_weight:
        margin = signals.get("margin") or 0.0
        score += options.margin_weight * margin
        facts += f", {margin:.2f} ahead of the next"
    judged = signals.get("model_yes")
    if options.probe_weight and judged is not None:
        score += options.probe_weight * (judged - 0.5)
        facts += f", and the model says yes at {judged:.0%}"
    signals["score"] = round(score, 4)
    facts += f" (score {score:.2f}"
    if score < options.min_score:
        return Coverage(False, f"{facts}, needs {options.min_score:.2f})", signals)
    return Coverage(True, f"{facts})", signals)


def needs_probe(signals: dict[str, Any], options: CoverageOptions = CoverageOptions()) -> bool:
    """Whether the model's own yes/no (``model_yes``, weighted by ``probe_weight``) could change
    :func:`decide`'s answer: the score without it lies within ``probe_weight / 2`` of
    ``min_score``, and no other test has declined already."""
    best = signals.get("best_similarity")
    if not options.probe_weight or best is None or not signals.get("chunks"):
        return False
    if signals.get("missing_terms") and signals.get("missing_share", 0.0) > options.max_missing_share:
        return False
    score = signal_score(signals, options)
    return score - options.probe_weight / 2 < options.min_score <= score + options.probe_weight / 2


def assess(question: str, hits: Sequence[Hit], index: Index,
           options: CoverageOptions = CoverageOptions()) -> Coverage:
    """:func:`measure` then :func:`decide`."""
    if not hits:
        return Coverage(False, "retrieval found no passage", {"chunks": index.counts()[1]})
    return decide(measure(question, hits, index), options)
