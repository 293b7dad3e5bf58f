"""``rt eval``: measure an index (and the model answering from it) on questions about its own documents.

:func:`evaluate` asks each :class:`~runtime.rag.eval_set.EvalQuestion` and scores it: the rank of
the first passage from the expected file (hit@1/5/10, MRR within 10), whether rt answered or
declined it (coverage, with the rule the index uses), and with a model the answer itself
(containment of the expected answer, citation validity, the share of supported claims, seconds
per answer). An interrupt stops the loop and the report holds what was measured so far.

A generated set (:func:`runtime.rag.eval_set.generate`) is asked of a copy of the index without
its held-out files (:func:`without_files`), so its unanswerable questions are about documents of
the same kind that rt cannot see.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime import env
from runtime.rag.calibration import Labelled, rule_for
from runtime.rag.coverage import assess
from runtime.rag.eval_set import EvalQuestion
from runtime.rag.metrics import answer_words, contains, first_rank

if TYPE_CHECKING:
    from runtime.index import Index
    from runtime.rag.rag import RAG

RANKS = (1, 5, 10)


@dataclass(frozen=True)
class Result:
    """What one question gave."""

    question: EvalQuestion
    rank: int | None  # of the first passage from the expected file, within 10 (None: not found)
    covered: bool
    signals: dict[str, Any]
    seconds: float
    contains: bool | None = None  # with a model, for an answered question with an expected answer
    valid: bool | None = None  # every cited number was a given source
    supported_share: float | None = None


@dataclass
class Report:
    """Every result so far and how the run went; :meth:`to_dict` gives the figures."""

    planned: int
    rule: str
    answers: bool
    results: list[Result] = field(default_factory=list)
    interrupted: bool = False

    def labelled(self) -> list[Labelled]:
        return [Labelled(r.signals, r.question.answerable) for r in self.results if "best_similarity" in r.signals]

    def to_dict(self) -> dict[str, Any]:
        results = self.results
        sourced = [r for r in results if r.question.answerable and r.question.source]
        answerable = [r for r in results if r.question.answerable]
        unanswerable = [r for r in results if not r.question.answerable]
        answered = [r for r in answerable if r.covered]
        retrieval = None
        if sourced:
            retrieval = {f"hit@{k}": _share(r.rank is not None and r.rank <= k for r in sourced) for k in RANKS}
            retrieval["mrr"] = round(sum(1 / r.rank for r in sourced if r.rank) / len(sourced), 4)
            retrieval["questions"] = len(sourced)
        answers = None
        if self.answers and answered:
            with_answer = [r for r in answered if r.contains is not None]
            answers = {"containment": _share(r.contains for r in with_answer) if with_answer else None,
                       "citation_validity": _share(bool(r.valid) for r in answered),
                       "supported_claims": round(statistics.fmean(r.supported_share or 0.0 for r in answered), 4),
                       "answered": len(answered)}
        return {
            "questions": self.planned,
            "measured": len(results),
            "interrupted": self.interrupted,
            "rule": self.rule,
            "retrieval": retrieval,
            "coverage": {"answered": _share(r.covered for r in answerable) if answerable else None,
                         "declined": _share(not r.covered for r in unanswerable) if unanswerable else None,
                         "answerable": len(answerable), "unanswerable": len(unanswerable)},
            "answers": answers,
            "seconds_per_question": round(statistics.fmean(r.seconds for r in results), 3) if results else None,
        }


def _share(values: Iterable[bool | None]) -> float:
    kept = list(values)
    return round(sum(bool(v) for v in kept) / len(kept), 4) if kept else 0.0


def evaluate(index: Index, questions: Sequence[EvalQuestion], *, rag: RAG | None = None,
             progress: Callable[[Result], None] | None = None) -> Report:
    """Ask every question (see the module docstring); with ``rag`` the model answers too."""
    coverage, rule = (rag.coverage, rag.coverage_rule) if rag is not None else rule_for(index)
    report = Report(len(questions), rule, rag is not None)
    k = index.default_k
    try:
        for q in questions:
            started = time.perf_counter()
            hits = index.search(q.question, max(RANKS[-1], k))
            rank = first_rank([h.path for h in hits], q.source) if q.source else None
            if rag is None:
                decided = assess(q.question, hits[:k], index, coverage)
                result = Result(q, rank, decided.covered, dict(decided.signals), time.perf_counter() - started)
            else:
                result = _answered(rag, q, rank, started)
            report.results.append(result)
            if progress is not None:
                progress(result)
    except KeyboardInterrupt:
        report.interrupted = True
    return report


def _answered(rag: RAG, q: EvalQuestion, rank: int | None, started: float) -> Result:
    answer = rag.ask(q.question)
    signals = dict(answer.coverage.signals) if answer.coverage is not None else {}
    seconds = time.perf_counter() - started
    if not answer.from_documents:
        return Result(q, rank, bool(answer.covered), signals, seconds)
    cited = answer.citations
    said = answer_words(answer.answer, [s.label for s in answer.sources] + [s.path for s in answer.sources])
    return Result(q, rank, bool(answer.covered), signals, seconds,
                  contains=contains(said, [q.answer]) if q.answer else None,
                  valid=bool(cited) and all(1 <= n <= len(answer.sources) for n in cited),
                  supported_share=(sum(c.supported for c in answer.claims) / len(answer.claims)
                                   if answer.claims else 0.0))


@contextlib.contextmanager
def without_files(index: Index, paths: Sequence[str]) -> Iterator[Index]:
    """A temporary copy of ``index`` that no longer holds ``paths`` (its embedder is shared)."""
    from runtime.index import Index as IndexClass
    from runtime.index.scan import key_path

    with tempfile.TemporaryDirectory(prefix="rt-eval-") as tmp:
        folder = Path(tmp) / "index"
        if env.is_index_url(index.location):  # a database: copied into a folder, as it is
            from runtime.index.push import copy_index

            copy_index(index, folder)
        else:
            shutil.copytree(index.folder, folder, ignore=shutil.ignore_patterns("*.lock"))
        copy = IndexClass.open(folder, embedder=index.embedder)
        try:
            copy.remove([key_path(p) for p in paths])  # stored keys back to paths
            yield copy
        finally:
            copy.close()
