"""``rt eval``: how well rt retrieves, decides coverage and answers on your own documents.

With ``--questions FILE.jsonl`` the questions are yours; without, rt makes a set from the index
(:mod:`runtime.rag.eval_set`), keeps it in the index folder (``eval/generated-seed<N>.jsonl``) so
a later run compares like with like, and asks it of a copy of the index without the held-out
files. ``--calibrate`` fits the coverage rule on the results (:mod:`runtime.rag.calibration`) and
stores it in the index when it beats the default on the held-back questions; ``--reset`` removes
it. Ctrl-C prints what was measured so far.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from runtime.cli.options import IndexLocation, load_options_from, model_options, show_warnings
from runtime.config import GenerateOptions
from runtime.rag.config import CoverageOptions

_GENERATE = GenerateOptions()


@click.command(name="eval")
@click.option("--index", "index_dir", type=IndexLocation(), default=None,
              help="Index to measure [default: RT_INDEX or RT_HOME/index].")
@click.option("--questions", "questions_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help='JSONL, one {"question", "source" and/or "answer", or "answerable": false} a line '
                   "[default: a set made from the index].")
@click.option("-n", "count", type=click.IntRange(min=4), default=None,
              help="Questions to make from the index (without --questions) [default: 40; 100 with --calibrate].")
@click.option("--seed", type=int, default=0, show_default=True, help="Which chunks and files the made set uses.")
@click.option("--regenerate", is_flag=True, help="Make the set again even if the index folder holds one.")
@click.option("--answers/--no-answers", default=None,
              help="Also answer each question with the model [default: yes, except with --calibrate].")
@click.option("--calibrate", is_flag=True, help="Fit the coverage rule on these questions and keep it in the index "
                                                "if it beats the default on the questions held back.")
@click.option("--reset", is_flag=True, help="Return the index to rt's default coverage rule and exit.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=_GENERATE.max_tokens, show_default=True,
              help="Most tokens per answer.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@model_options
def eval_command(index_dir: str | None, questions_file: Path | None, count: int | None, seed: int, regenerate: bool,
                 answers: bool | None, calibrate: bool, reset: bool, max_tokens: int, as_json: bool,
                 **params: Any) -> None:
    """Measure retrieval, coverage and answers on questions about the index's own documents.

    \b
      rt eval                              # a set made from the index, answered by the model
      rt eval --questions mine.jsonl       # your own questions
      rt eval --calibrate                  # fit the coverage rule to this index
    """
    from runtime.index import Index
    from runtime.rag import calibration
    from runtime.rag.eval_set import GeneratedSet, generate, read_questions

    show_warnings()
    with Index.open(index_dir) as index:
        if reset:
            calibration.store_rule(index, None)
            click.echo(f"rt eval: {index.folder} uses rt's default coverage rule again")
            return
        questions_file = questions_file.expanduser() if questions_file else None
        generated: GeneratedSet | None = None
        count = count or (100 if calibrate else 40)
        if questions_file is not None:
            questions = read_questions(questions_file)
        else:
            saved = index.folder / "eval" / f"generated-seed{seed}-n{count}.jsonl"
            if saved.exists() and not regenerate:
                generated = GeneratedSet.load(saved)
            else:
                generated = generate(index, count, seed=seed)
                generated.save(saved)
            questions = generated.questions
        with_model = answers if answers is not None else not calibrate
        with contextlib.ExitStack() as stack:
            target = stack.enter_context(_searched(index, generated))
            rag = _rag(stack, target, params, max_tokens) if with_model else None
            report = _run(target, questions, rag)
        result = report.to_dict()
        result["set"] = _set_facts(questions_file, generated)
        result["calibration"] = _calibrate(index, report, seed) if calibrate else None
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    else:
        _print(result)


def _searched(index: Any, generated: Any) -> Any:
    from runtime.rag.evaluate import without_files

    if generated is None:
        return contextlib.nullcontext(index)
    return without_files(index, generated.held_out)


def _rag(stack: contextlib.ExitStack, index: Any, params: dict[str, Any], max_tokens: int) -> Any:
    from runtime.llm.model import Model
    from runtime.models.registry import resolve_model
    from runtime.rag.rag import RAG

    model = stack.enter_context(Model(resolve_model(params["model"]), load_options_from(params)))
    return RAG(model, index, options=GenerateOptions(max_tokens=max_tokens))


def _run(index: Any, questions: list[Any], rag: Any) -> Any:
    from tqdm import tqdm

    from runtime.rag.evaluate import evaluate

    with tqdm(total=len(questions), desc="rt eval", unit="question", file=sys.stderr, leave=False,
              disable=not sys.stderr.isatty()) as bar:
        report = evaluate(index, questions, rag=rag, progress=lambda _: bar.update())
    if report.interrupted:
        click.echo(f"rt eval: interrupted; {len(report.results)} of {report.planned} questions measured",
                   err=True)
    return report


def _set_facts(questions_file: Path | None, generated: Any) -> dict[str, Any]:
    if generated is None:
        return {"file": str(questions_file), "method": None, "seed": None, "held_out_files": 0, "dropped": {}}
    return {"file": None, "method": generated.method, "seed": generated.seed,
            "held_out_files": len(generated.held_out), "dropped": generated.dropped}


def _calibrate(index: Any, report: Any, seed: int) -> dict[str, Any]:
    from runtime import __version__
    from runtime.rag import calibration

    if report.interrupted:
        return {"kept": False, "reason": "interrupted: no rule fitted on part of the questions",
                "rule": None, "fitted": None, "default": None}
    found = calibration.calibrate(report.labelled(), seed=seed, version=__version__)
    if found.kept and found.rule is not None:
        calibration.store_rule(index, found.rule)
    default = CoverageOptions()
    return {
        "kept": found.kept, "reason": found.reason, "fit_questions": found.fit_n, "check_questions": found.check_n,
        "rule": json.loads(found.rule.to_json()) if found.rule else None,
        "default": {"term_weight": default.term_weight, "margin_weight": default.margin_weight,
                    "min_score": default.min_score, **_rates(found.default)},
        "fitted": ({"term_weight": found.rule.term_weight, "margin_weight": found.rule.margin_weight,
                    "min_score": found.rule.min_score, **_rates(found.fitted)}
                   if found.rule and found.fitted else None),
    }


def _rates(rates: Any) -> dict[str, float]:
    return {"answered": round(rates.answered, 4), "declined": round(rates.declined, 4),
            "balanced_accuracy": round(rates.balanced, 4)}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _print(r: dict[str, Any]) -> None:
    facts = r["set"]
    made = (f"made from the index (method {facts['method']}, seed {facts['seed']}, "
            f"{facts['held_out_files']} files held out of the search; dropped: "
            f"{', '.join(f'{n} {why}' for why, n in facts['dropped'].items()) or 'none'})"
            if facts["method"] else f"from {facts['file']}")
    click.echo(f"{r['measured']} of {r['questions']} questions {made}")
    if r["retrieval"]:
        ret = r["retrieval"]
        click.echo(f"retrieval  hit@1 {ret['hit@1']:.3f}  hit@5 {ret['hit@5']:.3f}  hit@10 {ret['hit@10']:.3f}  "
                   f"MRR {ret['mrr']:.3f}  ({ret['questions']} questions with a source)")
    cov = r["coverage"]
    click.echo(f"coverage   answered {_pct(cov['answered'])} of {cov['answerable']} answerable, declined "
               f"{_pct(cov['declined'])} of {cov['unanswerable']} unanswerable  (rule: {r['rule']})")
    if r["answers"]:
        a = r["answers"]
        click.echo(f"answers    containment {_pct(a['containment'])}  citation validity "
                   f"{_pct(a['citation_validity'])}  supported claims {_pct(a['supported_claims'])}  "
                   f"({a['answered']} answered)")
    if r["seconds_per_question"] is not None:
        click.echo(f"time       {r['seconds_per_question']:.2f} s per question")
    cal = r["calibration"]
    if cal:
        if cal.get("default") and cal.get("fit_questions") is not None:
            click.echo(f"calibration: fitted on {cal['fit_questions']} questions, judged on the "
                       f"{cal['check_questions']} held back")
            click.echo(f"  {'rule':10s} {'term weight':>11s} {'margin weight':>13s} {'threshold':>9s} "
                       f"{'answered':>8s} {'declined':>8s} {'balanced':>8s}")
            for name in ("default", "fitted"):
                row = cal.get(name)
                if row:
                    click.echo(f"  {name:10s} {row['term_weight']:11.2f} {row['margin_weight']:13.2f} "
                               f"{row['min_score']:9.3f} "
                               f"{row['answered']:8.1%} {row['declined']:8.1%} {row['balanced_accuracy']:8.3f}")
        click.echo("calibration: " + ("kept: stored in the index; rt ask, rt chat and rt serve use it "
                                      "(rt eval --reset returns to the default)" if cal["kept"] else cal["reason"]))
