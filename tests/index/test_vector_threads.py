"""A single-query FAISS search runs on one OpenMP thread and leaves the process setting as it was."""

from __future__ import annotations

import numpy as np

from runtime.index.vectors import VectorIndex


class ThreadsSeen:
    """The real FAISS index, noting how many OpenMP threads FAISS may use when it searches."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.seen: list[int] = []

    def search(self, query, k):  # type: ignore[no-untyped-def]
        import faiss

        self.seen.append(faiss.omp_get_max_threads())
        return self.inner.search(query, k)

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


def test_one_query_searches_on_one_thread_and_restores_the_setting() -> None:
    import faiss

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex.build(np.arange(500, dtype=np.int64) * 7, vectors, "flat")
    index.index = ThreadsSeen(index.index)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        hits = index.search(vectors[42], 5)
        assert hits[0][0] == 42 * 7 and abs(hits[0][1] - 1.0) < 1e-5
        assert index.index.seen == [1]
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)
