"""Opening an rt index in PostgreSQL: its settings checked (or recorded) as a folder's are.

``Index.open("postgresql://user@host/db")`` comes here for the store and the options the index
was built with. A small local folder (``RT_HOME/cache/pg/<hash>``) stands in for the index folder
for what rt keeps beside an index (``rt eval``'s generated sets, a per-machine writer lock);
writers on other machines are kept apart by the database's transactions and advisory locks.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from runtime import env
from runtime.errors import IndexMismatchError, IndexNotFoundError
from runtime.index.config import IndexOptions
from runtime.index.stores.postgres import PostgresStore, describe
from runtime.index.stores.postgres_schema import untype_vectors

PG_VECTOR_INDEX = "hnsw"  # the database's vector index, whatever --vector-index said


def local_folder(url: str) -> Path:
    """The machine-local folder kept for the database ``url`` names (credentials left out)."""
    digest = hashlib.sha256(describe(url).encode("utf-8")).hexdigest()[:16]
    folder = env.cache_dir() / "pg" / digest
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_database(url: str, options: IndexOptions, wanted: str | None, *, create: bool = False,
                  rebuild: bool = False) -> tuple[PostgresStore, IndexOptions, dict[str, object] | None]:
    """The store of the rt index in ``url``, the options it was built with, and, for a rebuild of
    an index that holds documents, the new index's settings (else None).

    ``create`` makes the schema and records ``options`` if the database has no index yet. A
    ``rebuild`` leaves the index as it is: the next write builds the new one beside it and
    switches (runtime/index/rebuild.py), so readers see the old index until then. ``wanted`` (an
    embedding model name) must match the recorded one, else :class:`IndexMismatchError`.
    """
    store = PostgresStore(url, create=create or rebuild)
    try:
        with store.transaction():
            meta = store.meta()
            if "embedding_model" not in meta and not (create or rebuild):
                raise IndexNotFoundError(f"no rt index in {store.where}",
                                         hint=f"run `rt index PATH --index {store.where}` to build one")
            model = wanted or options.embedding_model
            if rebuild and "embedding_model" in meta and store.counts()[0] > 0:
                staged: dict[str, object] = dict(embedding_model=model, chunk_tokens=options.chunk_tokens,
                                                 overlap_tokens=options.overlap_tokens,
                                                 vector_index=PG_VECTOR_INDEX)
                return store, dataclasses.replace(options, embedding_model=model,
                                                  vector_index=PG_VECTOR_INDEX), staged
            if rebuild or "embedding_model" not in meta:
                _initialise(store, options, model, rebuild)
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
    return store, dataclasses.replace(
        options, embedding_model=recorded, chunk_tokens=int(meta["chunk_tokens"]),
        overlap_tokens=int(meta["overlap_tokens"]), vector_index=meta["vector_index"]), None


def _initialise(store: PostgresStore, options: IndexOptions, model: str, rebuild: bool) -> None:
    """Record the model and chunking of a new index, or of one with no documents to keep
    (inside a transaction)."""
    if rebuild:
        store.clear()
        store.delete_meta("dimension")
        untype_vectors(store.conn)
        store.bump_generation()
    store.set_meta(embedding_model=model, chunk_tokens=options.chunk_tokens,
                   overlap_tokens=options.overlap_tokens, vector_index=PG_VECTOR_INDEX)
