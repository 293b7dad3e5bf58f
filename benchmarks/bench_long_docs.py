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
import contextlib
import dataclasses
import hashlib
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_retrieval import HEADER, PrecomputedQueries, metrics, ranks_for, row  # noqa: E402
from benchmarks.bench_retrieval import index_for as reddit_index  # noqa: E402
from benchmarks.eval_data import EvalSet, cache_folder, load_eval_set  # noqa: E402
from benchmarks.eval_long import load_long_set  # noqa: E402
from runtime.index import (  # noqa: E402
    Index,
    IndexOptions,
    chunking,  # noqa: E402
)
from runtime.index.light_embedder import query_embedder  # noqa: E402
from runtime.index.readers import read_plain  # noqa: E402
from runtime.rag.evaluate import without_files  # noqa: E402

VARIANTS = {"before": 1, "sentences": 2}  # IndexOptions.chunker
_QUERY_VECTORS: dict = {}


def index_for(data: EvalSet, options: IndexOptions, variant: str, *, build: bool = True) -> Index:
    """``data.corpus`` indexed with chunking ``variant`` (cached by variant and options)."""
    recipe = repr([data.corpus.name, variant, options.chunk_tokens, options.overlap_tokens, options.embedding_model])
    folder = cache_folder() / f"index-long-{hashlib.sha1(recipe.encode()).hexdigest()[:10]}"
    index = Index.open(folder, create=True, options=dataclasses.replace(options, chunker=VARIANTS[variant]))
    index.embedder = PrecomputedQueries(index.embedder, _QUERY_VECTORS)
    if build:  # incremental: files already indexed are skipped, a stopped run is finished
        started = time.perf_counter()
        report = index.add([data.corpus])
        if report.changed:
            print(f"  (indexed {recipe} in {time.perf_counter() - started:.0f} s: {report.summary()})",
                  file=sys.stderr)
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


def measure(data: EvalSet, index: Index, variant: str, *, analyse: bool) -> list[int | None]:
    """Print the variant's row; return the ranks of the dev then the test questions."""
    dev_ranks, test_ranks = ranks_for(index, data, data.dev), ranks_for(index, data, data.test)
    print(row(f"{data.name}, {variant} ({index.stats().chunks} chunks)", metrics(dev_ranks), metrics(test_ranks)))
    if analyse:
        failures(index, data)
    return dev_ranks + test_ranks


def indexed_files(index: Index) -> set[str]:
    return {Path(key).name for key in index.chunk_ids_by_document()}


def on_common_files(data: EvalSet, indexes: dict[str, Index]) -> tuple[EvalSet, dict[str, list[str]]]:
    """The questions of the files every index holds, and per index the files to leave out: an
    indexing run stopped early (``--common``) is compared with the others on the same corpus."""
    common = set.intersection(*(indexed_files(ix) for ix in indexes.values()))
    kept = dataclasses.replace(data, dev=tuple(q for q in data.dev if q.path in common),
                               test=tuple(q for q in data.test if q.path in common))
    extra = {v: [k for k in ix.chunk_ids_by_document() if Path(k).name not in common] for v, ix in indexes.items()}
    print(f"(--common: {len(common)} files held by every index; {len(kept.dev)} dev and {len(kept.test)} "
          "test questions on them)")
    return kept, extra


def paired(name: str, before: list[int | None], after: list[int | None], n_dev: int) -> None:
    """Questions whose gold passage moved into or out of the first k, per split (same questions)."""
    for split, lo, hi in (("dev", 0, n_dev), ("test", n_dev, len(before))):
        cells = []
        for k in (1, 5, 10):
            won = sum((a is not None and a < k) and not (b is not None and b < k)
                      for b, a in zip(before[lo:hi], after[lo:hi]))
            lost = sum((b is not None and b < k) and not (a is not None and a < k)
                       for b, a in zip(before[lo:hi], after[lo:hi]))
            cells.append(f"hit@{k} +{won}/-{lost}")
        print(f"{name} {split}: " + ", ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--reddit", action="store_true", help="also measure the Reddit eval set")
    parser.add_argument("--per-split", type=int, default=300, help="Reddit questions per split")
    parser.add_argument("--common", action="store_true",
                        help="measure on the files every variant's (perhaps unfinished) index holds; build none")
    args = parser.parse_args()
    options = IndexOptions()
    long_set = load_long_set()
    variants = args.variant or ["before", "sentences"]
    indexes = {v: index_for(long_set, options, v, build=not args.common) for v in variants}
    data, extra = on_common_files(long_set, indexes) if args.common else (long_set, {v: [] for v in variants})
    print(f"## {len(data.dev)} dev and {len(data.test)} test questions on "
          f"{len(list(long_set.corpus.glob('*.txt')))} long files\n{HEADER}")
    ranks = {}
    for v in variants:
        with without_files(indexes[v], extra[v]) if extra[v] else contextlib.nullcontext(indexes[v]) as index:
            ranks[v] = measure(data, index, v, analyse=True)
        indexes[v].close()
    for v in variants[1:]:
        paired(f"{v} against {variants[0]}", ranks[variants[0]], ranks[v], len(data.dev))
    if args.reddit:
        reddit_check(load_eval_set(per_split=args.per_split), options)


def reddit_check(data: EvalSet, options: IndexOptions) -> None:
    """Re-chunk the Reddit corpus with both chunking versions (no embedding needed); where every
    file gives the same chunks, the cached index stands for both, and is measured once."""
    embedder = query_embedder(options.embedding_model)
    budget = min(options.chunk_tokens, embedder.max_tokens - 2)
    differ, files = 0, sorted(data.corpus.glob("*.md"))
    for path in files:
        for section in read_plain(path.read_bytes()).sections:
            a, b = (chunking.chunk_section(section, embedder.token_offsets, budget, options.overlap_tokens,
                                           wrapped_sentences=w) for w in (False, True))
            if a != b:
                differ += 1
                break
    print(f"\nReddit: {differ} of {len(files)} posts chunk differently under the two versions")
    index = reddit_index(data, options)
    print(row(f"reddit ({index.stats().chunks} chunks)", metrics(ranks_for(index, data, data.dev)),
              metrics(ranks_for(index, data, data.test))))
    index.close()


if __name__ == "__main__":
    main()
