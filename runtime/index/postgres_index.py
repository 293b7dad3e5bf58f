"""An :class:`~runtime.index.Index` whose rows live in PostgreSQL + pgvector.

``Index.open("postgresql://user@host/db")`` returns one. Everything above the store (ingest,
search and its fusion, rag's checks) is the local index's code; what differs is opening
(settings checked against the database's), vector search (HNSW in the database, so there is no
FAISS file to keep) and a lost connection: a search in flight when the server restarts is
retried once on a new connection. A small local folder (``RT_HOME/cache/pg/<hash>``) holds what
rt keeps beside an index (``rt eval``'s generated sets, a per-machine writer lock); writers on
other machines are kept apart by the database's transactions and advisory locks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from runtime import env
from runtime.errors import IndexMismatchError, IndexNotFoundError, IndexServerError
from runtime.index.config import IndexOptions
from runtime.index.embedder import Embedder, canonical_model_name
from runtime.index.index import Hit, Index, IndexStats
from runtime.index.ingest import IndexReport
from runtime.index.stores.postgres_schema import untype_vectors
from runtime.index.stores.postgres import PostgresStore, connection_error, describe
from runtime.index.scan import shown
from runtime.index.stores.base import ChunkRow

logger = logging.getLogger(__name__)
T = TypeVar("T")
PG_VECTOR_INDEX = "hnsw"  # the database's vector index, whatever --vector-index said


def local_folder(url: str) -> Path:
    """The machine-local folder kept for the database ``url`` names (credentials left out)."""
    digest = hashlib.sha256(describe(url).encode("utf-8")).hexdigest()[:16]
    folder = env.cache_dir() / "pg" / digest
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class PostgresIndex(Index):
    """An index in a PostgreSQL database (see the module docstring)."""

    store: PostgresStore

    def __init__(self, url: str, store: PostgresStore, options: IndexOptions, embedder: Embedder | None,
                 wait: float) -> None:
        super().__init__(local_folder(url), store, options, embedder, wait)
        self.url = url

    @property
    def location(self) -> str:
        return self.store.where

    @classmethod
    def open_url(cls, url: str, *, create: bool = False, embedding_model: str | None = None,
                 options: IndexOptions | None = None, embedder: Embedder | None = None,
                 rebuild: bool = False, wait: float = 0.0) -> PostgresIndex:
        """Open (``create``: make) the rt index in the database ``url`` names; arguments as
        :meth:`Index.open`. ``rebuild`` empties it at once (readers see an empty index until the
        next write fills it: there is no staged copy in a shared database)."""
        options = options or IndexOptions()
        wanted = embedder.name if embedder else (canonical_model_name(embedding_model) if embedding_model else None)
        store = PostgresStore(url, create=create or rebuild)
        try:
            with store.transaction():
                meta = store.meta()
                if "embedding_model" not in meta and not (create or rebuild):
                    raise IndexNotFoundError(f"no rt index in {store.where}",
                                             hint=f"run `rt index PATH --index {store.where}` to build one")
                if rebuild or "embedding_model" not in meta:
                    _initialise(store, options, wanted or canonical_model_name(options.embedding_model), rebuild)
                    meta = store.meta()
            recorded = meta["embedding_model"]
            if wanted and wanted != recorded:
                raise IndexMismatchError(
                    f"the index in {store.where} was built with embedding model {recorded} "
                    f"({meta.get('dimension', '?')} dimensions), not {wanted}",
                    hint=f"search without --embedding-model, or re-embed everything with "
                    f"`rt index --rebuild --embedding-model {wanted} --index URL`")
        except BaseException:
            store.close()
            raise
        options = dataclasses.replace(
            options, embedding_model=recorded, chunk_tokens=int(meta["chunk_tokens"]),
            overlap_tokens=int(meta["overlap_tokens"]), vector_index=meta["vector_index"])
        return cls(url, store, options, embedder, wait)

    # --- the differences from a folder index ------------------------------------------------
    def _write(self, roots: list[tuple[Path, tuple[str, ...], tuple[str, ...]]], progress: bool,
               follow_symlinks: bool) -> IndexReport:
        import psycopg

        try:
            return super()._write(roots, progress, follow_symlinks)
        except psycopg.OperationalError as exc:  # the server went away mid-run: commits are kept
            raise connection_error(exc, self.location) from None

    def search(self, query: str, k: int | None = None, *, mode: str | None = None) -> list[Hit]:
        return self._retried(lambda: Index.search(self, query, k, mode=mode))

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        return self._retried(lambda: Index.chunks(self, ids))

    def stats(self) -> IndexStats:
        """Counts, the embedding model and what the index's tables take on the server."""
        def read() -> IndexStats:
            with self._mutex, self.store.transaction(write=False):
                documents, chunks = self.store.counts()
                meta = self.store.meta()
                roots = tuple(shown(r[0]) for r in self.store.roots())
                size = self.store.size_bytes()
            return IndexStats(self.folder, documents, chunks, meta["embedding_model"],
                              int(meta["dimension"]) if "dimension" in meta else None,
                              meta["vector_index"], int(meta["generation"]), roots, size, location=self.location)
        return self._retried(read)

    def _retried(self, call: Callable[[], T]) -> T:
        """``call()``, once more on a new connection if the server dropped the old one (a
        restart, a failover); a second failure is one line saying what happened."""
        import psycopg

        try:
            return call()
        except psycopg.OperationalError as exc:
            logger.warning("lost the connection to %s (%s); reconnecting and retrying once",
                           self.location, type(exc).__name__)
        with self._mutex:
            self.store.reconnect()
        try:
            return call()
        except psycopg.OperationalError as exc:
            raise connection_error(exc, self.location) from None


def _initialise(store: PostgresStore, options: IndexOptions, model: str, rebuild: bool) -> None:
    """Record the model and chunking of a new (or emptied) index (inside a transaction)."""
    if rebuild:
        store.clear()
        store.delete_meta("dimension")
        untype_vectors(store.conn)
        store.bump_generation()
    store.set_meta(embedding_model=model, chunk_tokens=options.chunk_tokens,
                   overlap_tokens=options.overlap_tokens, vector_index=PG_VECTOR_INDEX)


__all__ = ["IndexServerError", "PostgresIndex", "local_folder"]
