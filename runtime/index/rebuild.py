"""``rt index --rebuild`` that keeps the old index until the new one is whole.

The new index is built in a database of its own (``<index>/rebuild/index.sqlite``), with the
same ingest as any run. Only when it is complete is it copied into the index's database, in one
SQLite transaction: a rebuild killed at any moment (kill -9 included) leaves the old index as it
was, searchable throughout, and the next write discards the half-built copy. Copying rows is
far cheaper than embedding them, and readers (``rt serve``) see the old snapshot or the new one,
never a mix. Swapping database files instead would race readers holding the old file and its
WAL open (and Windows refuses to replace an open file). An index too damaged to open is the one
case started over in place: there is nothing in it to keep.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from runtime.errors import IndexCorruptError
from runtime.index.config import IndexOptions
from runtime.index.store import DB_NAME, Store
from runtime.index.vectors import remove_stale_files

logger = logging.getLogger(__name__)
STAGING_NAME = "rebuild"

# The columns copied, named: an index made before chunks had a location got the column appended.
_CHUNK_COLUMNS = ("id, document_id, ordinal, text, page, line_start, line_end, char_start, char_end, "
                  "n_tokens, location")
_DOCUMENT_COLUMNS = "id, path, sha256, size, mtime, kind, encoding, n_chunks, indexed_at"


def discard_staging(folder: Path) -> None:
    """Remove a half-built rebuild left by a killed run (call with the writer lock held)."""
    staging = folder / STAGING_NAME
    if staging.exists():
        logger.info("removing the unfinished rebuild in %s", staging)
        shutil.rmtree(staging, ignore_errors=True)


def staging_store(folder: Path, meta: dict[str, object]) -> Store:
    """A new, empty store beside the index's, recording the rebuilt index's model and chunking."""
    discard_staging(folder)
    (folder / STAGING_NAME).mkdir(parents=True)
    store = Store(folder / STAGING_NAME, create=True)
    with store.transaction():
        store.set_meta(**meta)
    return store


def switch(main: Store, staged: Path) -> None:
    """Replace everything in ``main`` by the finished rebuild in the database ``staged``, in one
    transaction; the generation goes up, so the vectors cache is rebuilt from the new rows."""
    main.db.execute("ATTACH DATABASE ? AS staged", (str(staged),))
    try:
        with main.transaction():
            main.clear()
            main.db.execute(f"INSERT INTO documents ({_DOCUMENT_COLUMNS}) "
                            f"SELECT {_DOCUMENT_COLUMNS} FROM staged.documents")
            main.db.execute(f"INSERT INTO chunks ({_CHUNK_COLUMNS}) SELECT {_CHUNK_COLUMNS} FROM staged.chunks")
            main.db.execute("INSERT INTO vectors (chunk_id, vector) SELECT chunk_id, vector FROM staged.vectors")
            main.db.execute("INSERT INTO roots (path, include, exclude) SELECT path, include, exclude "
                            "FROM staged.roots")
            main.db.execute("DELETE FROM meta WHERE key = 'dimension'")
            main.db.execute("INSERT OR REPLACE INTO meta (key, value) SELECT key, value FROM staged.meta "
                            "WHERE key NOT IN ('generation', 'schema_version')")
            main.bump_generation()
    finally:
        main.db.execute("DETACH DATABASE staged")


def open_for_writing(folder: Path, rebuild: bool) -> Store:
    """The store, created if missing; with ``rebuild``, an unreadable database is replaced."""
    try:
        return Store(folder, create=True)
    except IndexCorruptError:
        if not rebuild:
            raise
        logger.warning("replacing the unreadable index database in %s", folder)
        for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
            (folder / name).unlink(missing_ok=True)
        return Store(folder, create=True)


def initialise(store: Store, folder: Path, options: IndexOptions, model: str, rebuild: bool) -> None:
    """Record the model and chunking of a new (or rebuilt) index; the writer lock is held."""
    if "embedding_model" in store.meta() and not rebuild:
        return
    with store.transaction():
        if rebuild:
            store.clear()
            store.delete_meta("dimension")
            store.bump_generation()
        store.set_meta(embedding_model=model, chunk_tokens=options.chunk_tokens,
                       overlap_tokens=options.overlap_tokens, vector_index=options.vector_index)
    remove_stale_files(folder, store.generation())
