"""The numpy embedder against sentence-transformers: load + first query, and throughput.

Run: ``python benchmarks/bench_embedder.py [--repeat 3] [--chunks 64] [--sentences 40]``

1. Load + first query: a fresh interpreter per run (what ``rt ask`` and ``rt search`` pay):
   import, load the embedded all-MiniLM-L6-v2, embed one query. The two embedders take turns
   ``--repeat`` times; medians and the ratio light / torch.
2. Throughput, in this process, both loaded: one query repeated (median of 20), ``--sentences``
   packing-sized sentences in one call (what packing and evidence embed per answer), and
   ``--chunks`` index-sized chunks of about 200 tokens (what indexing embeds; rt indexes with
   sentence-transformers). Texts are drawn from tests/index/corpus.py with a fixed seed.
The machine's load average is printed: on a shared machine the absolute seconds vary; the
ratios within one run compare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.index.corpus import QUESTIONS, TEXT_FILES  # noqa: E402

LOAD_AND_QUERY = """
import time
started = time.perf_counter()
from runtime.index.{module} import {cls}
embedder = {cls}()
loaded = time.perf_counter()
embedder.embed_query("when is the rent due?")
print(loaded - started, time.perf_counter() - loaded)
"""
KINDS = {"light": ("light_embedder", "LightEmbedder"), "torch": ("embedder", "SentenceTransformerEmbedder")}


def load_and_first_query(kind: str) -> tuple[float, float]:
    module, cls = KINDS[kind]
    done = subprocess.run([sys.executable, "-c", LOAD_AND_QUERY.format(module=module, cls=cls)],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    load, query = (float(x) for x in done.stdout.split())
    return load, query


def texts(rng: np.random.Generator, words: int, n: int) -> list[str]:
    pool = " ".join(TEXT_FILES.values()).split()
    return [" ".join(pool[i:i + words]) for i in rng.integers(0, len(pool) - words, n)]


def seconds(call, repeat: int = 1) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--sentences", type=int, default=40)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")

    runs: dict[str, list[tuple[float, float]]] = {"light": [], "torch": []}
    for _ in range(args.repeat):
        for kind in runs:
            runs[kind].append(load_and_first_query(kind))
    print(f"\n{'fresh process':<14} {'load s':>8} {'first query s':>14} {'sum s':>8}")
    sums = {}
    for kind, samples in runs.items():
        load = statistics.median(s[0] for s in samples)
        query = statistics.median(s[1] for s in samples)
        sums[kind] = statistics.median(s[0] + s[1] for s in samples)
        print(f"{kind:<14} {load:8.3f} {query:14.3f} {sums[kind]:8.3f}")
    print(f"load + first query, light / torch: {sums['light'] / sums['torch']:.3f}x")

    from runtime.index.embedders.light import LightEmbedder
    from runtime.index.embedders.sentence_transformers import SentenceTransformerEmbedder

    embedders = {"light": LightEmbedder(), "torch": SentenceTransformerEmbedder()}
    rng = np.random.default_rng(0)
    sentences, chunks = texts(rng, 20, args.sentences), texts(rng, 150, args.chunks)
    for embedder in embedders.values():  # warm both (first BLAS and torch calls)
        embedder.embed(sentences[:4])
    print(f"\n{'in process':<14} {'query ms':>9} {f'{args.sentences} sentences s':>15} {'chunks/s':>9}")
    rates = {}
    for kind, embedder in embedders.items():
        query = seconds(lambda: [embedder.embed_query(q[0]) for q in QUESTIONS[:5]], 5) / 5  # noqa: B023
        packing = seconds(lambda: embedder.embed(sentences), 3)  # noqa: B023
        rates[kind] = args.chunks / seconds(lambda: embedder.embed(chunks), 2)  # noqa: B023
        print(f"{kind:<14} {query * 1000:9.1f} {packing:15.3f} {rates[kind]:9.1f}")
    print(f"indexing throughput, light / torch: {rates['light'] / rates['torch']:.2f}x")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
