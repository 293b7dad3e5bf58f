"""FAISS over the vectors stored in SQLite: exact inner product (flat) or HNSW.

The FAISS file is a cache of one SQLite generation, ``vectors-<generation>.faiss``, written
atomically. A reader whose snapshot has no matching file (a writer is mid-run, or was killed)
builds an exact flat index from the BLOBs of that same snapshot, so it never searches vectors
that disagree with the chunk table. FAISS is imported only when vectors are needed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import FileInUseError, InsufficientDiskError
from runtime.fsutil import atomic_path, free_space, human_bytes

logger = logging.getLogger(__name__)

_FILE = re.compile(r"vectors-(\d+)\.faiss")
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 96


def vectors_file(folder: Path, generation: int) -> Path:
    return Path(folder) / f"vectors-{generation}.faiss"


class VectorIndex:
    """A FAISS index whose ids are chunk ids; scores are inner products (cosine for unit vectors)."""

    def __init__(self, index: Any, kind: str) -> None:
        self.index = index
        self.kind = kind

    @classmethod
    def empty(cls, dimension: int, kind: str = "flat") -> VectorIndex:
        """An index of ``dimension``-dimensional vectors with nothing in it yet."""
        import faiss

        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
            return cls(faiss.IndexIDMap(inner), kind)
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)), kind)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, kind: str = "flat") -> VectorIndex:
        """Index ``vectors`` (float32, unit rows) under ``ids`` (int64)."""
        index = cls.empty(vectors.shape[1], kind)
        index.add(ids, vectors)
        return index

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` under ``ids`` (a block at a time keeps a large index's build small)."""
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                    np.ascontiguousarray(ids, dtype=np.int64))

    @classmethod
    def load(cls, path: Path, kind: str) -> VectorIndex:
        """Read a saved index through a Python file (FAISS's own file API cannot open non-ASCII
        Windows paths), without a second copy of it in memory."""
        import faiss

        with open(path, "rb") as fh:
            # PyCallbackIOReader/Writer exist at run time but not in faiss-cpu's own stubs (1.15).
            index: Any = faiss.read_index(faiss.PyCallbackIOReader(fh.read))  # type: ignore[attr-defined]
        if kind == "hnsw":
            inner: Any = faiss.downcast_index(index.index)
            with contextlib.suppress(AttributeError):
                inner.hnsw.efSearch = HNSW_EF_SEARCH
        return cls(index, kind)

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves either the old file set or the complete new file."""
        import faiss

        try:
            # A cache file kept beside a held one would never be read: no ``.new`` copy.
            with atomic_path(path, keep_if_in_use=False) as tmp:
                with open(tmp, "wb") as fh:
                    faiss.write_index(self.index, faiss.PyCallbackIOWriter(fh.write))  # type: ignore[attr-defined]
        except FileInUseError as exc:
            raise FileInUseError(
                f"{path} is in use by another program (a running rt serve, rt chat or rt ask?); "
                "it was not replaced", path=path,
                hint="the documents are committed: close that program and run `rt index` again") from exc
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
            raise InsufficientDiskError(
                f"no room to write {path.name} in {path.parent}: {exc.strerror} "
                f"({human_bytes(free_space(path.parent))} free)",
                hint="free some space and run `rt index` again; the documents are committed") from exc

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def mismatch(self, dimension: int, ids: np.ndarray, stored: Callable[[list[int]], dict[int, bytes]]) -> str | None:
        """Why this index does not hold the vectors of a snapshot (``None`` if it does).

        Checked against SQLite: the dimension, the count, the set of chunk ids, and the vectors
        of a few of them (``stored(ids)`` gives their BLOBs); a file left from another index, an
        older database or a restored backup fails one of these.
        """
        import faiss

        if int(self.index.d) != dimension:
            return f"{self.index.d} dimensions, the index has {dimension}"
        if self.size != len(ids):
            return f"{self.size} vectors, the database has {len(ids)}"
        mapped = faiss.vector_to_array(self.index.id_map)
        if not np.array_equal(np.sort(mapped), ids):
            return "its chunk ids differ from the database's"
        if len(ids):
            picks = sorted({int(ids[i]) for i in np.linspace(0, len(ids) - 1, min(8, len(ids))).astype(int)})
            positions = {int(chunk_id): pos for pos, chunk_id in enumerate(mapped) if int(chunk_id) in picks}
            inner: Any = faiss.downcast_index(self.index.index)
            blobs = stored(picks)
            for chunk_id in picks:
                saved = np.frombuffer(blobs.get(chunk_id, b""), dtype=np.float32)
                if saved.shape != (dimension,) or not np.array_equal(inner.reconstruct(positions[chunk_id]), saved):
                    return f"the vector of chunk {chunk_id} differs from the database's"
        return None

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """``(chunk id, inner product)`` of the ``k`` nearest vectors, best first."""
        if self.size == 0 or k <= 0:
            return []
        with _one_openmp_thread():
            scores, ids = self.index.search(query.reshape(1, -1).astype(np.float32), min(k, self.size))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]


@contextlib.contextmanager
def _one_openmp_thread() -> Iterator[None]:
    """FAISS on one OpenMP thread for a single query: on a busy 2-core machine its threads
    waiting for each other made a flat search of 10k vectors take 92 ms at p50, against
    0.3 ms on one thread (benchmarks/bench_retrieval.py; torch has the same trap, see
    runtime/index/embedder.py). The setting is process-wide, so it is restored after."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def saved_generation_files(folder: Path) -> dict[int, Path]:
    """``generation -> file`` of every saved vectors file in ``folder``."""
    found = {}
    for path in Path(folder).glob("vectors-*.faiss"):
        match = _FILE.fullmatch(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def remove_stale_files(folder: Path, keep: int) -> None:
    """Delete vectors files of other generations (a reader may still hold one open on Windows)."""
    for generation, path in saved_generation_files(folder).items():
        if generation != keep:
            with contextlib.suppress(OSError):
                path.unlink()
