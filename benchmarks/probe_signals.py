"""The model's yes/no probe on an eval split, for ``bench_answers.py --probe`` (issue 9 §1).

For every question whose signal score (similarity + term weight x key-term share) lies within
``band`` of ``min_score`` (only there can the probe change a decision), the answer prompt is
built as ``rt ask`` builds it and the model's P(yes) is read from its next-token logits
(:func:`runtime.rag.probe.ask_model`); it joins the question's signals as ``model_yes``.

What the probe costs is measured on the same prompt, in the same run: the answer prompt alone
(``prompt``: its prompt-processing seconds), then, with it in the KV cache as after the probe's
own prompt processing, the probe's extra work (its question, about 20 tokens, and one logits
read) and the answer's tail after the rollback (``extra``). Values are kept in a JSON file per
model, split and band under the eval cache, so a refit reads them instead of asking again.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.eval_data import cache_folder
from runtime.config import GenerateOptions, LoadOptions
from runtime.rag.config import CoverageOptions

ONE_TOKEN = GenerateOptions(max_tokens=1)


def distance(signals: dict[str, Any], options: CoverageOptions = CoverageOptions()) -> float:
    """How far the score without the probe lies from ``options.min_score`` (inf: no score)."""
    best = signals.get("best_similarity")
    if best is None:
        return float("inf")
    return abs(best + options.term_weight * (signals.get("term_share") or 0.0) - options.min_score)


def in_band(signals: dict[str, Any], band: float, options: CoverageOptions = CoverageOptions()) -> bool:
    """Whether the score without the probe lies within ``band`` of ``options.min_score``."""
    return distance(signals, options) <= band


def add_probe(index: Any, model_path: Path, scored: Sequence[Any], *, split: str, band: float,
              threads: int | None = None) -> dict[str, list[float]]:
    """Set ``model_yes`` in the signals of the ``scored`` questions within ``band``; the cost
    figures (``prompt``, ``extra`` seconds and ``probe_tokens``), one per probed question."""
    from runtime.llm.model import Model
    from runtime.rag.probe import ask_model
    from runtime.rag.rag import RAG

    store = cache_folder() / f"probe-{model_path.stem}-{split}.json"
    saved: dict[str, Any] = json.loads(store.read_text()) if store.exists() else {"yes": {}, "costs": []}
    # nearest the threshold first: an interrupted run has covered a narrower band completely
    todo = sorted((s for s in scored if in_band(s.signals, band) and s.question.text not in saved["yes"]),
                  key=lambda s: distance(s.signals))
    if todo:
        model = Model(model_path, LoadOptions(n_ctx=4096, threads=threads, prefix_cache=False))
        rag = RAG(model, index, options=GenerateOptions(max_tokens=64))
        started = time.perf_counter()
        for n, s in enumerate(todo, 1):
            question = s.question.text
            built = rag._sourced_prompt(question, rag.retrieve(question), rag.options, ())
            alone = model.complete(built.text, ONE_TOKEN)  # the prompt as rt ask processes it
            result = ask_model(model, rag._renderer, built)  # now only its own question is new
            after = model.complete(built.text, ONE_TOKEN)  # the answer's tail after the rollback
            assert result is not None
            saved["yes"][question] = result.p_yes
            saved["costs"].append([alone.prompt_seconds, result.seconds + after.prompt_seconds,
                                   result.prompt_tokens - result.cached_tokens])
            if n % 10 == 0:
                print(f"  probe {n}/{len(todo)} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
                store.write_text(json.dumps(saved))
        model.close()
        store.write_text(json.dumps(saved))
    for s in scored:
        if s.question.text in saved["yes"] and in_band(s.signals, band):
            s.signals["model_yes"] = saved["yes"][s.question.text]
    prompt, extra, tokens = (list(c) for c in zip(*saved["costs"])) if saved["costs"] else ([], [], [])
    return {"prompt": prompt, "extra": extra, "probe_tokens": tokens}


def report(scored: Sequence[Any], costs: dict[str, list[float]]) -> None:
    """P(yes) for answerable and unanswerable questions, how well it ranks them, and its cost."""
    probed = [s for s in scored if "model_yes" in s.signals]
    good = [s.signals["model_yes"] for s in probed if s.question.answerable]
    bad = [s.signals["model_yes"] for s in probed if not s.question.answerable]
    if not good or not bad:
        print("  probe: too few questions in the band to compare")
        return
    # the chance that an answerable question gets a higher P(yes) than an unanswerable one
    auc = sum((g > b) + 0.5 * (g == b) for g in good for b in bad) / (len(good) * len(bad))
    print(f"  probe on {len(probed)} questions near the threshold: P(yes) median answerable "
          f"{statistics.median(good):.2f}, unanswerable {statistics.median(bad):.2f}; AUC {auc:.2f}")
    if costs["prompt"]:
        prompt, extra = statistics.median(costs["prompt"]), statistics.median(costs["extra"])
        print(f"  probe cost: {extra:.3f} s extra per probed ask ({statistics.median(costs['probe_tokens']):.0f}"
              f" tokens of its own question, one logits read, the answer's tail again) against "
              f"{prompt:.2f} s of prompt processing for the answer ({extra / prompt:.1%}), medians")
