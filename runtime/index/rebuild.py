"""``rt index --rebuild`` that keeps the old index until the new one is whole.

The new index is built in a database of its own (``<index>/rebuild/index.sqlite``), with the
same ingest as any run. Only when it is complete is it copied into the index's database, in one
SQLite transaction: a rebuild killed at any moment (kill -9 included) leaves the old index as it
was, searchable throughout, and the next write discards the half-built copy. Copying rows is
far cheaper than embedding them, and readers (``rt serve``) see the old snapshot or the new one,
never a mix. Swapping database files instead would race readers holding the old file and its
WAL open (and Windows refuses to replace an open file). An index too damaged to open is the one
case started over in place: there is nothing in it to keep.

An index in PostgreSQL is rebuilt the same way, in a schema of its own beside the index's
(``rt_rebuild``), which one transaction renames into place (``PostgresStore.staging`` and
``switch_to``): readers on other machines see the old index until then, and a killed rebuild
leaves it whole.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.errors import IndexCorruptError
from runtime.index.config import IndexOptions
from runtime.index.store import DB_NAME, Store
from runtime.index.vectors import remove_stale_files

if TYPE_CHECKING:
    from runtime.index.stores.base import IndexStore

logger = logging.getLogger(__name__)
STAGING_NAME = "rebuild"

def discard_staging(folder: Path) -> None:
    """Remove a half-built rebuild left by a killed run (call with the writer lock held)."""
    staging = folder / STAGING_NAME
    if staging.exists():
        logger.info("removing the unfinished rebuild in %s", staging)
        shutil.rmtree(staging, ignore_errors=True)


def staging_store(folder: Path, meta: dict[str, object], main: IndexStore | None = None) -> IndexStore:
    """A new, empty store beside the index's, recording the rebuilt index's model and chunking
    (for a database, ``main``: a schema beside the index's, runtime/index/stores/postgres.py)."""
    if main is not None and not isinstance(main, Store):
        from runtime.index.stores.postgres import PostgresStore

        if isinstance(main, PostgresStore):
            return main.staging(meta)
    discard_staging(folder)
    (folder / STAGING_NAME).mkdir(parents=True)
    store = Store(folder / STAGING_NAME, create=True)
    with store.transaction():
        store.set_meta(**meta)
    return store


def switch(main: IndexStore, staged: IndexStore) -> None:
    """Replace everything in ``main`` by the finished rebuild ``staged``, in one transaction;
    the generation goes up, so the vectors cache is rebuilt from the new rows."""
    if isinstance(main, Store) and isinstance(staged, Store):
        staged.close()
        main.replace_with(staged.path)
        return
    from runtime.index.stores.postgres import PostgresStore

    if not (isinstance(main, PostgresStore) and isinstance(staged, PostgresStore)):
        raise TypeError(f"cannot switch {type(main).__name__} to a rebuilt {type(staged).__name__}")
    main.switch_to(staged)


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
                       overlap_tokens=options.overlap_tokens, vector_index=options.vector_index,
                       chunker=options.chunker)
    remove_stale_files(folder, store.generation())
