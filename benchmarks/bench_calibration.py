"""The coverage rule calibrated per index (``rt eval --calibrate``) against rt's default, side by side.

Run: ``python benchmarks/bench_calibration.py [--n 200] [--seed 0] [--corpus FOLDER ...]``

1. The eval data of :mod:`benchmarks.eval_data` (SQuAD-Shifts' Reddit posts by default): the
   default rule, unchanged, on the dev and test splits' answerable questions and on the questions about
   held-out posts (crowd questions, not made by rt); then rt eval's own set is made from the index
   (``--n`` questions, ``--seed``), the rule is calibrated on it exactly as ``rt eval --calibrate``
   does, and the calibrated rule is measured on the same test questions; then the rule is
   calibrated instead on the dev split's crowd questions, as ``rt eval --calibrate --questions``
   would be on a file of people's questions, and measured on test again.
2. Each ``--corpus FOLDER`` (a second corpus of your choice; ``--corpus pydoc`` writes Python's own
   language reference, the 79 help topics every CPython ships in ``pydoc_data.topics``, 465 kB of
   technical text, one file per topic): indexed once under the eval cache;
   calibrated on the set made with ``--seed`` and judged on a set made with another seed (other
   chunks, other held-out files), since such a corpus has no crowd questions.

Targets (issue 18): with the calibrated rule, unanswerable questions about absent documents of the
same kind declined >= 0.9 while answerable ones are answered >= 0.9.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_answers import open_index  # noqa: E402
from benchmarks.eval_data import cache_folder, load_eval_set  # noqa: E402
from runtime import __version__  # noqa: E402
from runtime.rag.calibration import Calibration, Labelled, calibrate, rates  # noqa: E402
from runtime.rag.config import CoverageOptions  # noqa: E402
from runtime.rag.coverage import measure  # noqa: E402
from runtime.rag.eval_set import generate  # noqa: E402
from runtime.rag.evaluate import evaluate, without_files  # noqa: E402


def labelled(index: Any, questions: list[Any]) -> list[Labelled]:
    k = index.default_k
    return [Labelled(measure(q.text, index.search(q.text, k), index), q.answerable) for q in questions]


def calibrated(index: Any, n: int, seed: int) -> tuple[Calibration, list[Labelled], Calibration]:
    """``rt eval --calibrate``'s fit on the set made from ``index``; that set's labels; and the
    same fit without the margin signal (its weight held at 0), to show what the margin adds."""
    made = generate(index, n, seed=seed)
    with without_files(index, made.held_out) as searched:
        items = evaluate(searched, made.questions).labelled()
    print(f"  made {len(made.questions)} questions (seed {seed}; {len(made.held_out)} files held out; "
          f"dropped {made.dropped})")
    return (calibrate(items, seed=seed, version=__version__), items,
            calibrate(items, seed=seed, version=__version__, margin_weights=(0.0,)))


def side_by_side(title: str, items: list[Labelled], found: Calibration,
                 without_margin: Calibration | None = None) -> None:
    print(f"  {title}: {sum(i.answerable for i in items)} answerable, {sum(not i.answerable for i in items)} "
          "unanswerable")
    default = CoverageOptions()
    rules = [("default", default)]
    if found.rule is not None:
        rules.append(("calibrated" + ("" if found.kept else " (refused)"), found.rule.options(default)))
    if without_margin is not None and without_margin.rule is not None:
        rules.append(("same, without margin" + ("" if without_margin.kept else " (refused)"),
                      without_margin.rule.options(default)))
    for name, options in rules:
        r = rates(items, options)
        met = "meets" if min(r.answered, r.declined) >= 0.9 else "misses"
        print(f"    {name:22s} term weight {options.term_weight:.2f} margin weight {options.margin_weight:.2f} "
              f"threshold {options.min_score:.3f}: "
              f"answered {r.answered:.1%}, declined {r.declined:.1%} ({met} 0.9/0.9)")


def report_fit(found: Calibration) -> None:
    print(f"  fit: {found.fit_n} questions, judged on {found.check_n}: {found.reason}"
          + (f"; held-back balanced accuracy {found.fitted.balanced:.3f} vs default {found.default.balanced:.3f}"
             if found.fitted else ""))


def pydoc_corpus() -> Path:
    """Python's language reference help topics, one Markdown file each, under the eval cache."""
    from pydoc_data.topics import topics

    folder = cache_folder() / f"pydoc-{sys.version_info.major}.{sys.version_info.minor}"
    folder.mkdir(parents=True, exist_ok=True)
    for topic, text in topics.items():
        (folder / f"{topic}.md").write_text(f"# {topic}\n\n{text}", encoding="utf-8")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="questions rt eval makes from each index")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", action="append", default=[], help="a second corpus folder, or pydoc")
    args = parser.parse_args()

    data = load_eval_set()
    index = open_index(data)
    print(f"## {data.name}: index of {index.stats().documents} documents, {index.stats().chunks} chunks")
    started = time.perf_counter()
    dev = labelled(index, list(data.dev) + list(data.unanswerable_dev))
    test = labelled(index, list(data.test) + list(data.unanswerable_test))
    found, _, plain = calibrated(index, args.n, args.seed)
    report_fit(found)
    side_by_side("dev split (crowd questions; unanswerable: held-out posts)", dev, found, plain)
    side_by_side("test split (crowd questions; unanswerable: held-out posts)", test, found, plain)
    # the same fit on people's questions: the dev split as a question file (rt eval --calibrate --questions)
    from_dev = calibrate(dev, seed=args.seed, version=__version__)
    print("  calibrated instead on the dev split's crowd questions (as with --questions):")
    report_fit(from_dev)
    side_by_side("test split", test, from_dev, calibrate(dev, seed=args.seed, margin_weights=(0.0,)))
    print(f"  ({time.perf_counter() - started:.0f} s)")
    index.close()

    from runtime.index import Index

    for name in args.corpus:
        folder = pydoc_corpus() if name == "pydoc" else Path(name).resolve()
        where = cache_folder() / f"index-corpus-{hashlib.sha1(str(folder).encode()).hexdigest()[:10]}"
        started = time.perf_counter()
        with Index.open(where, create=True) as corpus_index:
            corpus_index.add([folder])
            print(f"## {folder}: {corpus_index.stats().documents} documents, {corpus_index.stats().chunks} chunks")
            found, _, plain = calibrated(corpus_index, args.n, args.seed)
            report_fit(found)
            print("  judged on a second made set:")
            _, judged, _ = calibrated(corpus_index, args.n, args.seed + 1)
            side_by_side(f"made set, seed {args.seed + 1}", judged, found, plain)
            print(f"  ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
