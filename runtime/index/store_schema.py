"""The SQLite store's schema, as numbered migrations (simonw/llm keeps its embeddings database so).

``meta.schema_version`` is the number of migrations an index has had. Opening an index runs the
ones it lacks, each in its own write transaction that re-reads the version first, so two
processes opening an old index at once migrate it once. A migration that shipped is never
edited: a change to the schema is a new function appended to :data:`MIGRATIONS`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

from runtime.errors import IndexMismatchError

logger = logging.getLogger(__name__)

# Version 1 as rt first wrote it: chunks had no location yet.
_TABLES_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE roots (path TEXT PRIMARY KEY, include TEXT NOT NULL, exclude TEXT NOT NULL);
CREATE TABLE documents (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    mtime REAL NOT NULL, kind TEXT NOT NULL, encoding TEXT, n_chunks INTEGER NOT NULL,
    indexed_at REAL NOT NULL);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL, text TEXT NOT NULL, page INTEGER, line_start INTEGER, line_end INTEGER,
    char_start INTEGER NOT NULL, char_end INTEGER NOT NULL, n_tokens INTEGER NOT NULL);
CREATE INDEX chunks_document ON chunks(document_id);
CREATE TABLE vectors (chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
                      vector BLOB NOT NULL);
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
"""


def _m001_tables(db: sqlite3.Connection) -> None:
    for statement in split_statements(_TABLES_V1):
        db.execute(statement)
    db.execute("INSERT INTO meta VALUES ('schema_version', '0'), ('generation', '0')")


def _m002_chunk_location(db: sqlite3.Connection) -> None:
    """Chunks say where they are beyond page and lines: a slide, sheet rows, a heading path.
    Some version-1 indexes already have the column (rt added it without a version number)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(chunks)")}
    if "location" not in columns:
        db.execute("ALTER TABLE chunks ADD COLUMN location TEXT")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_m001_tables, _m002_chunk_location)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: sqlite3.Connection) -> int:
    """How many migrations the database has had (0: no tables yet)."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone() is None:
        return 0
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row is not None else 0


def migrate(db: sqlite3.Connection, where: str, transaction: Callable[[], AbstractContextManager[None]],
            *, create: bool) -> None:
    """Run the migrations ``db`` lacks, each inside ``transaction()`` (a write transaction); the
    first one only with ``create``. A database newer than this rt is refused; one that cannot be
    written (a read-only copy, a writer holding it past the busy timeout) is searched as it is."""
    version = schema_version(db)
    if version > SCHEMA_VERSION:
        raise IndexMismatchError(f"{where} was made by a newer rt (schema {version}, this rt knows "
                                 f"up to {SCHEMA_VERSION})", hint="upgrade rt: pip install -U rt")
    if version == 0 and not create:
        return
    for number in range(version + 1, SCHEMA_VERSION + 1):
        try:
            with transaction():
                if schema_version(db) < number:  # another process may have run it meanwhile
                    MIGRATIONS[number - 1](db)
                    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(number),))
        except sqlite3.OperationalError as exc:
            if version == 0:
                raise
            logger.info("cannot migrate %s to schema %d: %s", where, number, exc)
            return


def split_statements(script: str) -> list[str]:
    """Statements of a script; trigger bodies keep their inner semicolons."""
    statements, current = [], ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements
