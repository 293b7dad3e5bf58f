"""Retrieval on long technical documents (issue 18 §4): git's manuals and design notes.

Run: ``python benchmarks/bench_long_docs.py [--variant NAME ...] [--reddit]``

The set is :mod:`benchmarks.eval_long` (38 AsciiDoc files of 20-100k characters from Debian's
``git-doc``, questions made by rt eval's "terms" method, split by file into dev and test). Each
``--variant`` indexes the corpus with one chunking (cached under the eval cache by variant, chunk
size and model) and prints hit@1/5/10 and MRR on dev and test, then, for the dev questions whose
gold passage is not first, what was first instead: another passage of the same file or another
file, and how the gold passage's chunk is made (does it hold a heading, does it start with one).
``--reddit`` also measures the Reddit eval set (benchmarks/eval_data.py) with the same variant,
so a change made for long documents is checked on short ones.

Variants: ``before`` is the chunking before issue 18 §4 (every line end ends a unit, so chunks
and their overlaps began and ended inside hard-wrapped sentences); ``sentences`` is rt's chunking
now (:func:`runtime.index.chunking.chunk_section`: a line that goes on with the sentence of the
line before is never where a chunk ends or its overlap starts).
All numbers come from one run on one (shared) machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_retrieval import HEADER, PrecomputedQueries, metrics, ranks_for, row  # noqa: E402
from benchmarks.eval_data import EvalSet, cache_folder, load_eval_set  # noqa: E402
from benchmarks.eval_long import load_long_set  # noqa: E402
from runtime.index import Index, IndexOptions  # noqa: E402
from runtime.index import chunking  # noqa: E402

VARIANTS = {"before": 1, "sentences": 2}  # IndexOptions.chunker
_QUERY_VECTORS: dict = {}


def index_for(data: EvalSet, options: IndexOptions, variant: str) -> Index:
    """``data.corpus`` indexed with chunking ``variant`` (cached by variant and options)."""
    recipe = repr([data.corpus.name, variant, options.chunk_tokens, options.overlap_tokens, options.embedding_model])
    folder = cache_folder() / f"index-long-{hashlib.sha1(recipe.encode()).hexdigest()[:10]}"
    index = Index.open(folder, create=True, options=dataclasses.replace(options, chunker=VARIANTS[variant]))
    index.embedder = PrecomputedQueries(index.embedder, _QUERY_VECTORS)
    if index.stats().chunks == 0:
        started = time.perf_counter()
        report = index.add([data.corpus])
        print(f"  (indexed {recipe} in {time.perf_counter() - started:.0f} s: {report.summary()})", file=sys.stderr)
    return index


def failures(index: Index, data: EvalSet) -> None:
    """What came first for the dev questions whose gold passage did not."""
    kinds: Counter[str] = Counter()
    for q in data.dev:
        hits = index.search(q.text, 10)
        if hits and data.is_gold(q, hits[0].path, hits[0].lines, hits[0].text):
            continue
        first = hits[0] if hits else None
        if first is None:
            kinds["nothing found"] += 1
        elif Path(first.path).name != q.path:
            kinds["another file first"] += 1
        else:
            kinds["another passage of the same file first"] += 1
        gold = next((h for h in hits if data.is_gold(q, h.path, h.lines, h.text)), None)
        if gold is None:
            kinds["  gold not in the first 10"] += 1
        elif chunking.holds_heading(gold.text):
            kinds["  gold chunk holds a heading"] += 1
    print("dev misses at rank 1:", ", ".join(f"{k.strip()} {v}" for k, v in sorted(kinds.items())))


def measure(data: EvalSet, options: IndexOptions, variant: str, *, analyse: bool) -> None:
    index = index_for(data, options, variant)
    dev, test = metrics(ranks_for(index, data, data.dev)), metrics(ranks_for(index, data, data.test))
    print(row(f"{data.name}, {variant} ({index.stats().chunks} chunks)", dev, test))
    if analyse:
        failures(index, data)
    index.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--reddit", action="store_true", help="also measure the Reddit eval set")
    parser.add_argument("--per-split", type=int, default=300, help="Reddit questions per split")
    args = parser.parse_args()
    options = IndexOptions()
    long_set = load_long_set()
    print(f"## {len(long_set.dev)} dev and {len(long_set.test)} test questions on "
          f"{len(list(long_set.corpus.glob('*.txt')))} long files\n{HEADER}")
    for variant in args.variant or ["before", "sentences"]:
        measure(long_set, options, variant, analyse=True)
        if args.reddit:
            measure(load_eval_set(per_split=args.per_split), options, variant, analyse=False)


if __name__ == "__main__":
    main()
