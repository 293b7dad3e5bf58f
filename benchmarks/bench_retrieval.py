"""Retrieval quality on the eval set of issue 9 (SQuAD dev articles), and search latency at 10k chunks.

Run: ``python benchmarks/bench_retrieval.py [--per-split N] [--chunks 10000] [--ablation]``

1. Quality: the 40 indexed articles of :mod:`benchmarks.eval_data` are indexed once with rt's
   defaults (cached beside the data, keyed by the index options); every dev and test question
   (3,431 and 5,165; ``--per-split 300`` draws a seeded sample of each, as earlier runs did) is
   searched with ``Index.search(question, 10)``. hit@k is the share of questions whose gold
   passage (the chunk holding the answer in its paragraph) is in the first k hits; MRR counts
   1/rank within the first 10. Targets on test: hit@1 >= 0.80, hit@5 >= 0.95, hit@10 >= 0.97.
2. Follow-ups (``rt chat``): pairs of questions on one article, the second stripped of the
   article's name ("When did it open?"), retrieved on their own words and with the
   conversation's context (:func:`runtime.rag.followup.contextual_query`).
3. Latency: the same index padded with synthetic chunks (random unit vectors, text drawn from
   the corpus) to ``--chunks``; p50 of ``Index.search`` with each query's vector computed
   beforehand, so that query embedding is excluded (target <= 50 ms at 10k chunks).
4. ``--ablation``: the retrievers alone, plain RRF against the weighted fusion (its weight
   fitted on dev here), the sentence coverage of :mod:`runtime.index.proximity` on and off
   (its weight fitted on dev), and with ``--chunk-sizes`` other chunk sizes, on dev and test.
The quality part also prints each test figure as a count with its 95% (Wilson) interval, to
tell a miss of a target by a few questions from a real one.
All numbers come from one run on one (shared) machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.eval_data import EvalSet, Question, cache_folder, load_eval_set  # noqa: E402
from runtime.index import Index, IndexOptions  # noqa: E402
from runtime.index.chunking import Chunk  # noqa: E402
from runtime.index.store import DocumentRecord  # noqa: E402

TARGETS = {"hit@1": 0.80, "hit@5": 0.95, "hit@10": 0.97}
ALL_QUESTIONS = 100_000  # more than either split holds: every question (a 300 sample's interval is +-0.03-0.05)
_QUERY_VECTORS: dict[str, np.ndarray] = {}  # keyed by (model, query) text; one embedding model here
INDEX_FIELDS = ("chunk_tokens", "overlap_tokens", "embedding_model")


def index_for(data: EvalSet, options: IndexOptions) -> Index:
    """An index of ``data.corpus`` built with ``options`` (reused from the cache when it exists)."""
    recipe = repr([data.corpus.name, *(getattr(options, f) for f in INDEX_FIELDS)])
    folder = cache_folder() / f"index-{hashlib.sha1(recipe.encode()).hexdigest()[:10]}"
    index = Index.open(folder, create=True, options=options)
    index.embedder = PrecomputedQueries(index.embedder, _QUERY_VECTORS)  # each query embedded once per run
    if index.stats().chunks == 0:
        started = time.perf_counter()
        report = index.add([data.corpus])
        print(f"  (indexed {recipe} in {time.perf_counter() - started:.0f} s: {report.summary()})",
              file=sys.stderr)
    return index


def gold_rank(data: EvalSet, question: Question, hits: Sequence) -> int | None:
    """0-based rank of the first hit that is the question's gold passage."""
    for rank, hit in enumerate(hits):
        if data.is_gold(question, hit.path, hit.lines, hit.text):
            return rank
    return None


def metrics(ranks: Sequence[int | None]) -> dict[str, float]:
    n = max(len(ranks), 1)
    out = {f"hit@{k}": sum(r is not None and r < k for r in ranks) / n for k in (1, 5, 10)}
    out["MRR"] = sum(1.0 / (r + 1) for r in ranks if r is not None and r < 10) / n
    return out


def ranks_for(index: Index, data: EvalSet, questions: Sequence[Question],
              search: Callable[[Index, str], Sequence] | None = None) -> list[int | None]:
    search = search or (lambda ix, text: ix.search(text, 10))
    return [gold_rank(data, q, search(index, q.text)) for q in questions]


def row(name: str, dev: dict[str, float], test: dict[str, float]) -> str:
    cells = [f"{dev[k]:.3f}" for k in ("hit@1", "hit@5", "hit@10", "MRR")]
    cells += [f"{test[k]:.3f}" for k in ("hit@1", "hit@5", "hit@10", "MRR")]
    return f"| {name} | " + " | ".join(cells) + " |"


HEADER = ("| configuration | dev hit@1 | dev hit@5 | dev hit@10 | dev MRR | test hit@1 | test hit@5 | "
          "test hit@10 | test MRR |\n|---|---|---|---|---|---|---|---|---|")


def quality(data: EvalSet, options: IndexOptions) -> None:
    index = index_for(data, options)
    print(f"## Retrieval quality: {index.stats().chunks} chunks from {len(list(data.corpus.glob('*.md')))} "
          f"articles; {len(data.dev)} dev and {len(data.test)} test questions; rt's defaults")
    dev, test = metrics(ranks_for(index, data, data.dev)), metrics(ranks_for(index, data, data.test))
    print(HEADER)
    print(row("rt defaults", dev, test))
    verdicts = ", ".join(f"{k} {test[k]:.3f} {'meets' if test[k] >= t else 'MISSES'} >= {t}"
                         for k, t in TARGETS.items())
    print(f"\ntest: {verdicts}")
    n = len(data.test)
    for k, target in TARGETS.items():
        low, high = wilson_interval(test[k], n)
        short = math.ceil(round(target * n - test[k] * n, 6))
        print(f"  {k}: {round(test[k] * n)} of {n} questions, 95% interval {low:.3f}-{high:.3f}; "
              + (f"{short} more hits reach {target}" if short > 0 else f"{-short} hits to spare over {target}"))
    print("  (questions cluster by article, so the true spread is wider)\n")
    index.close()


def wilson_interval(share: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for z = 1.96) of a share measured on ``n`` questions."""
    if n == 0:
        return 0.0, 1.0
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def fit_dense_weight(index: Index, data: EvalSet, base: IndexOptions) -> float:
    """The weight of the weighted fusion with the best dev MRR (0.1 steps)."""
    best = (-1.0, 0.0)
    for weight in [round(0.1 * i, 1) for i in range(11)]:
        index.options = dataclasses.replace(base, fusion="weighted", dense_weight=weight, sentence_weight=0.0)
        score = metrics(ranks_for(index, data, data.dev))["MRR"]
        best = max(best, (score, weight))
    return best[1]


def fit_sentence_weight(index: Index, data: EvalSet, base: IndexOptions) -> float:
    """The sentence-coverage weight (on top of the weighted fusion) with the best dev MRR."""
    best = (-1.0, 0.0)
    for weight in (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0):
        index.options = dataclasses.replace(base, sentence_weight=weight)
        best = max(best, (metrics(ranks_for(index, data, data.dev))["MRR"], weight))
    return best[1]


def ablation(data: EvalSet, base: IndexOptions, chunk_sizes: Sequence[int]) -> None:
    print("## Ablation (each lever on rt's defaults; weights fitted on dev)")
    print(HEADER)
    index = index_for(data, base)
    searches: list[tuple[str, IndexOptions]] = [
        ("dense only", dataclasses.replace(base, mode="dense")),
        ("keyword (BM25) only", dataclasses.replace(base, mode="keyword")),
        ("hybrid, plain RRF (k=60)", dataclasses.replace(base, fusion="rrf")),
    ]
    weight = fit_dense_weight(index, data, base)
    searches.append((f"hybrid, weighted fusion (dense weight {weight} fitted on dev), no sentence coverage",
                     dataclasses.replace(base, fusion="weighted", dense_weight=weight, sentence_weight=0.0)))
    sentence = fit_sentence_weight(index, data, base)
    searches.append((f"the same + sentence coverage (weight {sentence} fitted on dev)",
                     dataclasses.replace(base, sentence_weight=sentence)))
    for name, options in searches:
        index.options = options
        print(row(name, metrics(ranks_for(index, data, data.dev)), metrics(ranks_for(index, data, data.test))))
    index.close()
    variants = [(f"chunks of {tokens} tokens", dataclasses.replace(
        base, chunk_tokens=tokens, overlap_tokens=min(base.overlap_tokens, tokens // 4)))
        for tokens in chunk_sizes if tokens != base.chunk_tokens]
    for name, options in variants:
        index = index_for(data, options)
        print(row(name, metrics(ranks_for(index, data, data.dev)), metrics(ranks_for(index, data, data.test))))
        index.close()
    print()


def followup_pairs(data: EvalSet, questions: Sequence[Question], n: int, seed: int = 3) -> list[tuple[str, Question]]:
    """``(first question, follow-up)`` pairs on one article: the follow-up is another question
    about that article that names the article's subject, with that name replaced by "it"."""
    rng = random.Random(seed)
    by_title: dict[str, list[Question]] = {}
    for q in questions:
        by_title.setdefault(q.title, []).append(q)
    pairs = []
    for q in questions:
        subject = q.title.replace("_", " ").split(",")[0].split(" (")[0]
        if subject.lower() not in q.text.lower() or len(by_title[q.title]) < 2:
            continue
        stripped = _replace_ci(q.text, subject, "it")
        first = rng.choice([o for o in by_title[q.title] if o is not q])
        pairs.append((first.text, dataclasses.replace(q, text=stripped)))
    rng.shuffle(pairs)
    return pairs[:n]


def _replace_ci(text: str, old: str, new: str) -> str:
    start = text.lower().find(old.lower())
    prefix = "the " if text[max(0, start - 4):start].lower() == "the " else ""
    if prefix:
        start -= 4
        old = prefix + old
    return text[:start] + new + text[start + len(old):]


def followups(data: EvalSet, options: IndexOptions, n: int) -> None:
    try:
        from runtime.rag.followup import contextual_query
    except ImportError:
        print("## Follow-ups: runtime.rag.followup not available\n")
        return
    index = index_for(data, options)
    print(f"## Follow-up questions in a conversation ({n} pairs per split built from the eval set)")
    print("| follow-up retrieved with | dev hit@1 | dev hit@5 | test hit@1 | test hit@5 |\n|---|---|---|---|---|")
    names = ("follow-up: its own words only", "follow-up: with the conversation's context",
             "topic switch: its own words only", "topic switch: with the conversation's context")
    results: dict[str, list[str]] = {name: [] for name in names}
    for split in (data.dev, data.test):
        pairs = followup_pairs(data, split, n)
        # a topic switch: the next question is about another article, asked in full
        rng = random.Random(5)
        switches = [(rng.choice([o for o in split if o.title != q.title]).text, q) for q in split[:n]]
        for kind, items in (("follow-up", pairs), ("topic switch", switches)):
            alone = [gold_rank(data, q, index.search(q.text, 10)) for _, q in items]
            with_context = [gold_rank(data, q, index.search(contextual_query(q.text, [first], index.store), 10))
                            for first, q in items]
            for name, ranks in ((f"{kind}: its own words only", alone),
                                (f"{kind}: with the conversation's context", with_context)):
                m = metrics(ranks)
                results[name] += [f"{m['hit@1']:.3f}", f"{m['hit@5']:.3f}"]
    for name, cells in results.items():
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    index.close()


class PrecomputedQueries:
    """The index's embedder, with query vectors computed once beforehand (so that timing a
    search excludes query embedding)."""

    def __init__(self, inner, cache: dict[str, np.ndarray] | None = None) -> None:  # type: ignore[no-untyped-def]
        self.inner = getattr(inner, "inner", inner)
        self.cache = cache if cache is not None else {}
        self.name, self.dimension, self.max_tokens = inner.name, inner.dimension, inner.max_tokens

    def embed(self, texts):  # type: ignore[no-untyped-def]
        return self.inner.embed(texts)

    def embed_query(self, query: str) -> np.ndarray:
        if query not in self.cache:
            self.cache[query] = self.inner.embed_query(query)
        return self.cache[query]

    def token_offsets(self, text: str):  # type: ignore[no-untyped-def]
        return self.inner.token_offsets(text)


def pad(folder: Path, n_chunks: int, dimension: int, sentences: list[str]) -> None:
    """Add synthetic chunks (random unit vectors, corpus sentences) until the index holds ``n_chunks``."""
    rng = np.random.default_rng(n_chunks)
    with Index.open(folder) as index:
        store = index.store
        missing = n_chunks - index.stats().chunks
        per_doc, doc = 100, 0
        while missing > 0:
            with store.transaction():
                for _ in range(min(20, -(-missing // per_doc))):
                    n = min(per_doc, missing)
                    chunks = [Chunk(" ".join(rng.choice(sentences, 6)), None, (1, 3), (0, 1), 150) for _ in range(n)]
                    vectors = rng.normal(size=(n, dimension)).astype(np.float32)
                    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                    record = DocumentRecord(f"/synthetic/doc-{doc}.txt", f"{doc:064x}", 1, 0.0, "text", "utf-8")
                    store.put_document(record, chunks, [v.tobytes() for v in vectors], time.time())
                    missing, doc = missing - n, doc + 1
                store.bump_generation()
        store.sync_vectors()  # the FAISS file of the generation just committed


def latency(data: EvalSet, options: IndexOptions, n_chunks: int) -> None:
    source = index_for(data, options)
    dimension = source.embedder.dimension
    embedder = PrecomputedQueries(source.embedder, _QUERY_VECTORS)
    source.close()
    sentences = [s for f in data.corpus.glob("*.md") for s in f.read_text(encoding="utf-8").split(". ") if len(s) > 40]
    with tempfile.TemporaryDirectory(prefix="rt-bench-retrieval-") as tmp:
        folder = Path(tmp) / "ix"
        shutil.copytree(source.folder, folder)
        pad(folder, n_chunks, dimension, sentences)
        queries = [q.text for q in (*data.dev, *data.test)]
        with Index.open(folder, embedder=embedder, options=options) as index:
            for q in queries:
                index.search(q, 10)  # computes each vector once; warms FAISS and SQLite
            samples: dict[str, list[float]] = {"hybrid": [], "dense": [], "keyword": []}
            for q in queries:
                for mode, times in samples.items():
                    started = time.perf_counter()
                    index.search(q, 10, mode=mode)
                    times.append(time.perf_counter() - started)
            chunks = index.stats().chunks
    print(f"## Search latency at {chunks:,} chunks, query embedding excluded ({len(queries)} queries, k=10)")
    for mode, times in samples.items():
        ms = sorted(t * 1000 for t in times)
        print(f"{mode:8s} p50 {statistics.median(ms):6.2f} ms   p90 {ms[int(len(ms) * 0.9)]:6.2f} ms")
    print(f"target: hybrid p50 <= 50 ms: {'meets' if statistics.median(samples['hybrid']) <= 0.05 else 'MISSES'}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-split", type=int, default=ALL_QUESTIONS,
                        help="answerable questions drawn for dev and for test [default: every one]")
    parser.add_argument("--chunks", type=int, default=10_000, help="index size for the latency part")
    parser.add_argument("--followups", type=int, default=100, help="follow-up pairs per split")
    parser.add_argument("--parts", default="quality,followups,latency", help="which parts to run")
    parser.add_argument("--ablation", action="store_true", help="also measure each lever on and off")
    parser.add_argument("--chunk-sizes", default="", help="with --ablation: chunk sizes to index and compare "
                        "(each is a full re-embedding: minutes), e.g. 128,256")
    args = parser.parse_args()
    data = load_eval_set(per_split=args.per_split)
    options = IndexOptions()
    parts = set(args.parts.split(","))
    if "quality" in parts:
        quality(data, options)
    if "followups" in parts and args.followups:
        followups(data, options, args.followups)
    if "latency" in parts and args.chunks:
        latency(data, options, args.chunks)
    if args.ablation:
        ablation(data, options, [int(t) for t in args.chunk_sizes.split(",") if t])


if __name__ == "__main__":
    main()
