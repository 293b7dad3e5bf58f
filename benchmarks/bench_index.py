"""Indexing throughput against sentence-transformers alone, and search latency at 10k/100k chunks.

Run: ``python benchmarks/bench_index.py [--docs 12] [--sizes 10000,100000] [--hnsw]``

1. Throughput: synthetic documents (sentences drawn from a fixed vocabulary, seeded) are indexed
   with ``Index.add`` (read, hash, chunk, embed, SQLite + FTS5, FAISS file) and the same chunk
   texts are then embedded with ``SentenceTransformer.encode`` directly, same batch size. The
   ratio is index chunks/s over encode chunks/s (target >= 0.9).
2. Latency: an index of N synthetic chunks whose vectors are random unit vectors (embedding
   100k real texts would take hours on a laptop CPU and FAISS's cost does not depend on the
   values), with real text in SQLite/FTS5. Queries are real questions; "excl. embedding" reuses
   each query's vector, "incl. embedding" runs MiniLM on the query each time.
3. Formats (``--formats N``, 0 skips): N files of each format (.docx, .pptx, .xlsx, .epub, .odt,
   .mbox) made as the tests make them, read by rt's readers (no embedding): files/s per format;
   and OCR pages/s on image-only PDF pages (with the ``ocr`` extra). ``--formats-only`` skips
   parts 1 and 2.
All numbers come from one run on one machine; only the ratios compare.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.fsutil import human_bytes  # noqa: E402
from runtime.index import Index, IndexOptions, SentenceTransformerEmbedder  # noqa: E402
from runtime.index.chunking import Chunk  # noqa: E402
from runtime.index.store import DocumentRecord  # noqa: E402
from tests.index.corpus import QUESTIONS, TEXT_FILES  # noqa: E402

VOCABULARY = sorted({w.strip(".,:;()'\"").lower() for t in TEXT_FILES.values() for w in t.split()} - {""})


def synthetic_text(rng: np.random.Generator, words: int) -> str:
    sentences, total = [], 0
    while total < words:
        n = int(rng.integers(6, 20))
        sentence = " ".join(rng.choice(VOCABULARY, n))
        sentences.append(sentence.capitalize() + ".")
        total += n
    paragraphs = [" ".join(sentences[i:i + 5]) for i in range(0, len(sentences), 5)]
    return "\n\n".join(paragraphs)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def throughput(embedder: SentenceTransformerEmbedder, n_docs: int, rounds: int, work: Path) -> None:
    """Alternate full index runs and direct encodes; best of ``rounds`` each (the machine is shared)."""
    rng = np.random.default_rng(0)
    docs = work / "docs"
    docs.mkdir()
    for i in range(n_docs):
        (docs / f"doc-{i:03d}.md").write_text(f"# Document {i}\n\n" + synthetic_text(rng, 1500))
    embedder.embed(["warm up the model"] * 8)
    index_seconds, direct_seconds = [], []
    for _ in range(rounds):
        with Index.open(work / "ix", create=True, rebuild=True, embedder=embedder) as index:
            started = time.perf_counter()
            report = index.add([docs])
            index_seconds.append(time.perf_counter() - started)
            texts = [r[0] for r in index.store.db.execute("SELECT text FROM chunks ORDER BY id")]
            tokens = index.store.db.execute("SELECT AVG(n_tokens) FROM chunks").fetchone()[0]
        started = time.perf_counter()
        embedder.model.encode(texts, batch_size=embedder.batch_size, normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=False)
        direct_seconds.append(time.perf_counter() - started)
    n = len(texts)
    indexed, direct = n / min(index_seconds), n / min(direct_seconds)
    print(f"## Indexing throughput ({n_docs} files, {n} chunks of {tokens:.0f} tokens on average, "
          f"best of {rounds} alternating rounds)")
    print(f"rt index (read+chunk+embed+SQLite+FAISS): {indexed:7.1f} chunks/s  "
          f"(runs: {', '.join(f'{s:.1f}' for s in index_seconds)} s)")
    print(f"SentenceTransformer.encode directly:      {direct:7.1f} chunks/s  "
          f"(runs: {', '.join(f'{s:.1f}' for s in direct_seconds)} s)")
    print(f"ratio: {indexed / direct:.2f}  (target >= 0.90); last run: {report.summary()}")
    print(f"index size on disk: {human_bytes(folder_size(work / 'ix'))} for {n} chunks\n")


def build_synthetic(folder: Path, n_chunks: int, embedder: SentenceTransformerEmbedder, kind: str) -> float:
    rng = np.random.default_rng(n_chunks)
    started = time.perf_counter()
    with Index.open(folder, create=True, embedder=embedder, options=IndexOptions(vector_index=kind)) as index:
        store = index.store
        with store.transaction():
            store.set_meta(dimension=embedder.dimension)
        per_doc = 100
        for first in range(0, n_chunks, 10_000):
            with store.transaction():
                for doc in range(first // per_doc, min(n_chunks, first + 10_000) // per_doc):
                    chunks = [Chunk(synthetic_text(rng, 120), None, (1, 3), (0, 1), 150) for _ in range(per_doc)]
                    vectors = rng.normal(size=(per_doc, embedder.dimension)).astype(np.float32)
                    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                    record = DocumentRecord(f"/synthetic/doc-{doc}.txt", f"{doc:064x}", 1, 0.0, "text", "utf-8")
                    store.put_document(record, chunks, [v.tobytes() for v in vectors], time.time())
                store.bump_generation()
        index._save_vectors()
    return time.perf_counter() - started


class CachedQueries:
    """The real embedder, with each query's vector computed once (to time search without it)."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self.inner, self.cache = inner, {}
        self.name, self.dimension, self.max_tokens = inner.name, inner.dimension, inner.max_tokens

    def embed(self, texts):  # type: ignore[no-untyped-def]
        return self.inner.embed(texts)

    def embed_query(self, query: str) -> np.ndarray:
        if query not in self.cache:
            self.cache[query] = self.inner.embed_query(query)
        return self.cache[query]

    def token_offsets(self, text: str):  # type: ignore[no-untyped-def]
        return self.inner.token_offsets(text)


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"p50 {np.percentile(ms, 50):7.2f} ms  p99 {np.percentile(ms, 99):7.2f} ms"


def latency(embedder: SentenceTransformerEmbedder, n_chunks: int, work: Path, kind: str) -> None:
    folder = work / f"ix-{n_chunks}-{kind}"
    build_seconds = build_synthetic(folder, n_chunks, embedder, kind)
    queries = [q for q, _, _ in QUESTIONS] * 4
    print(f"## Search latency, {n_chunks:,} chunks, {kind} vectors "
          f"(index built in {build_seconds:.0f} s, {human_bytes(folder_size(folder))} on disk)")
    cached = CachedQueries(embedder)
    started = time.perf_counter()
    index = Index.open(folder, embedder=cached)
    index.search(queries[0], 5, mode="dense")  # loads the FAISS file
    print(f"open + first search (loads vectors): {(time.perf_counter() - started) * 1000:.0f} ms")
    for q in queries:
        cached.embed_query(q)
        index.search(q, 5, mode="hybrid")  # warm SQLite's page cache for every mode alike
    # Modes interleave query by query, so a busy moment on a shared machine hits them alike.
    excluded: dict[str, list[float]] = {"hybrid": [], "dense": [], "keyword": []}
    for q in queries:
        for mode, samples in excluded.items():
            t = time.perf_counter()
            index.search(q, 5, mode=mode)
            samples.append(time.perf_counter() - t)
    index.close()
    included: dict[str, list[float]] = {"hybrid": [], "dense": []}
    with Index.open(folder, embedder=embedder) as index:
        index.search(queries[0], 5)
        for q in queries:
            for mode, samples in included.items():
                t = time.perf_counter()
                index.search(q, 5, mode=mode)
                samples.append(time.perf_counter() - t)
    for mode, samples in excluded.items():
        print(f"{mode:8s} excl. query embedding: {percentiles(samples)}")
    for mode, samples in included.items():
        print(f"{mode:8s} incl. query embedding: {percentiles(samples)}")
    print()


def formats(n: int, work: Path) -> None:
    """Files/s per format through rt's readers, and OCR pages/s on scanned pages."""
    from runtime.index.readers import reader_for
    from tests.index import test_formats as made

    folder = work / "formats"
    folder.mkdir()
    makers = {".docx": made.make_docx, ".pptx": made.make_pptx, ".xlsx": made.make_xlsx,
              ".epub": made.make_epub, ".odt": made.make_odt}
    for suffix, make in makers.items():
        make(folder / f"sample{suffix}")
    made.make_mbox(folder / "sample.mbox", folder / "sample.docx")
    print(f"formats: {n} reads of each file, readers only (no embedding)")
    for path in sorted(folder.iterdir()):
        reader = reader_for(path)
        started = time.perf_counter()
        for _ in range(n):
            with path.open("rb") as handle:
                sections = list(reader.read(handle, None, 20_000))
        seconds = time.perf_counter() - started
        print(f"  {path.suffix:6} {n / seconds:8.1f} files/s  ({human_bytes(path.stat().st_size)}, "
              f"{sum(len(s.text) for s in sections)} chars)")
    from runtime.index.formats.ocr import ocr_available

    if not ocr_available():
        print("  OCR: the ocr extra is not installed (pip install 'rt[ocr]')")
        return
    from runtime.index.readers import read_pdf_stream
    from tests.index.test_ocr import LINES, write_scanned_pdf

    pages = 4
    write_scanned_pdf(folder / "scan.pdf", LINES, pages=pages)
    with (folder / "scan.pdf").open("rb") as handle:
        list(read_pdf_stream(handle, None, 20_000))  # loads the OCR models once
    started = time.perf_counter()
    with (folder / "scan.pdf").open("rb") as handle:
        ocr = [s for s in read_pdf_stream(handle, None, 20_000) if s.location]
    seconds = time.perf_counter() - started
    print(f"  OCR    {pages / seconds:8.2f} pages/s  ({pages} image-only pages, {len(ocr)} OCR'd sections)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=12, help="synthetic files for the throughput part")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of index vs encode")
    parser.add_argument("--sizes", default="10000,100000", help="chunk counts for the latency part")
    parser.add_argument("--hnsw", action="store_true", help="also time an HNSW index at the largest size")
    parser.add_argument("--formats", type=int, default=20, help="reads of each format for files/s (0 skips)")
    parser.add_argument("--formats-only", action="store_true", help="only the formats and OCR part")
    args = parser.parse_args()
    if args.formats_only:
        with tempfile.TemporaryDirectory(prefix="rt-bench-formats-") as tmp:
            formats(max(args.formats, 1), Path(tmp))
        return
    import torch

    print(f"torch threads: {torch.get_num_threads()}; embedding model: all-MiniLM-L6-v2 (CPU)\n")
    embedder = SentenceTransformerEmbedder()
    with tempfile.TemporaryDirectory(prefix="rt-bench-index-") as tmp:
        work = Path(tmp)
        throughput(embedder, args.docs, args.rounds, work)
        sizes = [int(s) for s in args.sizes.split(",") if s]
        for size in sizes:
            latency(embedder, size, work, "flat")
        if args.hnsw and sizes:
            latency(embedder, max(sizes), work, "hnsw")
        if args.formats:
            formats(args.formats, work)


if __name__ == "__main__":
    main()
