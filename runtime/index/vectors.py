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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

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


class VectorRows(Protocol):
    """What a :class:`VectorCache` reads from its store: the vectors of one snapshot."""

    def generation(self) -> int: ...

    def meta(self) -> dict[str, str]: ...

    def vector_blocks(self, dimension: int, rows: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...

    def vector_ids(self) -> np.ndarray: ...

    def vector_blobs(self, ids: Sequence[int]) -> dict[int, bytes]: ...


class VectorCache:
    """The FAISS index of a store's vectors, saved in ``folder`` per generation.

    The writer saves the file of the generation it committed (:meth:`save`); a reader searches
    the file of its snapshot's generation, or, while there is none (a writer mid-run or
    killed), an exact index built from that same snapshot (:meth:`search`). The kind (flat or
    HNSW) is the one the store's settings record.
    """

    def __init__(self, folder: Path, rows: VectorRows) -> None:
        self.folder = Path(folder)
        self.rows = rows
        self._vectors: VectorIndex | None = None
        self._generation = -1

    def _kind(self) -> str:
        return self.rows.meta().get("vector_index", "flat")

    def save(self) -> None:
        """Write the file of the current generation unless a matching one is there (the writer
        lock is held), and delete the other generations' files."""
        generation = self.rows.generation()
        dimension = self.rows.meta().get("dimension")
        if dimension is None:
            return
        saved = saved_generation_files(self.folder).get(generation)
        if saved is not None and self._checked_file(saved, int(dimension)) is not None:
            return
        vectors = VectorIndex.empty(int(dimension), self._kind())
        for ids, matrix in self.rows.vector_blocks(int(dimension)):  # one block in memory at a time
            vectors.add(ids, matrix)
        vectors.save(vectors_file(self.folder, generation))
        remove_stale_files(self.folder, generation)
        if self._generation != generation:
            self._vectors, self._generation = vectors, generation

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """``(chunk id, inner product)`` of the ``k`` nearest vectors (inside a read transaction)."""
        return self.current().search(query, k)

    def current(self) -> VectorIndex:
        """The vectors of the current snapshot (call inside a read transaction)."""
        generation = self.rows.generation()
        if self._vectors is None or self._generation != generation:
            dimension = self.rows.meta().get("dimension")
            if dimension is None:
                return VectorIndex.build(np.zeros(0, np.int64), np.zeros((0, 1), np.float32))
            self._vectors = self._load(generation, int(dimension))
            self._generation = generation
        return self._vectors

    def _load(self, generation: int, dimension: int) -> VectorIndex:
        """The saved FAISS file of ``generation``, else an exact index built from this snapshot."""
        saved = saved_generation_files(self.folder).get(generation)
        if saved is not None and (vectors := self._checked_file(saved, dimension)) is not None:
            return vectors
        vectors = VectorIndex.empty(dimension, "flat")
        for ids, matrix in self.rows.vector_blocks(dimension):
            vectors.add(ids, matrix)
        return vectors

    def _checked_file(self, saved: Path, dimension: int) -> VectorIndex | None:
        """The saved FAISS file if it holds exactly this snapshot's vectors, else ``None``: a
        cache of the wrong dimension or a stale one is rebuilt from SQLite, never searched."""
        try:
            vectors = VectorIndex.load(saved, self._kind())
        except (OSError, RuntimeError) as exc:  # removed by a writer meanwhile, or unreadable
            logger.info("vectors file %s unusable (%s); using SQLite", saved, exc)
            return None
        why = vectors.mismatch(dimension, self.rows.vector_ids(), self.rows.vector_blobs)
        if why is not None:
            logger.warning("vectors file %s does not match the database (%s); rebuilding it from SQLite",
                           saved, why)
            return None
        return vectors


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
