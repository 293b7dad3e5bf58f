"""FAISS over the vectors stored in SQLite: exact inner product (flat) or HNSW.

The FAISS file is a cache of one SQLite generation, ``vectors-<generation>.faiss``, written
atomically. A reader whose snapshot has no matching file (a writer is mid-run, or was killed)
builds an exact flat index from the BLOBs of that same snapshot, so it never searches vectors
that disagree with the chunk table. FAISS is imported only when vectors are needed.
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from runtime.fsutil import atomic_write_bytes

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
    def build(cls, ids: np.ndarray, vectors: np.ndarray, kind: str = "flat") -> VectorIndex:
        """Index ``vectors`` (float32, unit rows) under ``ids`` (int64)."""
        import faiss

        dimension = vectors.shape[1]
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
            index = faiss.IndexIDMap(inner)
        else:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                               np.ascontiguousarray(ids, dtype=np.int64))
        return cls(index, kind)

    @classmethod
    def load(cls, path: Path, kind: str) -> VectorIndex:
        """Read a saved index (through bytes: FAISS's own file API cannot open non-ASCII Windows paths)."""
        import faiss

        index: Any = faiss.deserialize_index(np.fromfile(path, dtype=np.uint8))
        if kind == "hnsw":
            inner: Any = faiss.downcast_index(index.index)
            with contextlib.suppress(AttributeError):
                inner.hnsw.efSearch = HNSW_EF_SEARCH
        return cls(index, kind)

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves either the old file set or the complete new file."""
        import faiss

        atomic_write_bytes(path, faiss.serialize_index(self.index).tobytes())

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """``(chunk id, inner product)`` of the ``k`` nearest vectors, best first."""
        if self.size == 0 or k <= 0:
            return []
        scores, ids = self.index.search(query.reshape(1, -1).astype(np.float32), min(k, self.size))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]


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
