"""The SQLite store's numbered migrations: indexes written by earlier rt versions open, migrate
once and keep their rows; an index from a newer rt is refused in one line."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from runtime.errors import IndexMismatchError
from runtime.index import Index
from runtime.index.store import DB_NAME, Store
from runtime.index.store_schema import SCHEMA_VERSION, split_statements
from tests.hashing_embedder import HashingEmbedder

# The DDL rt wrote at schema_version "1" (runtime/index/store.py before numbered migrations),
# with the chunk ``location`` column that later releases appended in place.
_OLD_DDL = """
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
    char_start INTEGER NOT NULL, char_end INTEGER NOT NULL, n_tokens INTEGER NOT NULL{location});
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
TEXT = "The Zorblat 3000 kettle is descaled with citric acid every month."


def old_index(folder: Path, *, with_location: bool) -> Path:
    """An index as an earlier rt left it: schema_version 1, one document with one chunk."""
    folder.mkdir(parents=True)
    db = sqlite3.connect(folder / DB_NAME)
    db.executescript(_OLD_DDL.format(location=", location TEXT" if with_location else ""))
    embedder = HashingEmbedder()
    db.executemany("INSERT INTO meta VALUES (?, ?)", [
        ("schema_version", "1"), ("generation", "1"), ("embedding_model", embedder.name),
        ("dimension", str(embedder.dimension)), ("chunk_tokens", "200"), ("overlap_tokens", "30"),
        ("vector_index", "flat")])
    db.execute("INSERT INTO documents VALUES (1, '/notes/kettle.txt', 'ab', 70, 0.0, 'text', 'utf-8', 1, 0.0)")
    db.execute("INSERT INTO chunks (id, document_id, ordinal, text, page, line_start, line_end, char_start, "
               "char_end, n_tokens) VALUES (1, 1, 0, ?, NULL, 1, 1, 0, ?, 14)", (TEXT, len(TEXT)))
    vector = embedder.embed([TEXT])[0].astype(np.float32).tobytes()
    db.execute("INSERT INTO vectors VALUES (1, ?)", (vector,))
    db.commit()
    db.close()
    return folder


def _version(folder: Path) -> str:
    db = sqlite3.connect(folder / DB_NAME)
    try:
        return str(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
    finally:
        db.close()


@pytest.mark.parametrize("with_location", [False, True])
def test_an_index_at_schema_1_is_migrated_on_open_and_keeps_its_rows(tmp_path: Path, with_location: bool) -> None:
    folder = old_index(tmp_path / "index", with_location=with_location)
    with Index.open(folder, embedder=HashingEmbedder()) as index:
        hits = index.search("How is the kettle descaled?", 3)
        assert [h.text for h in hits] == [TEXT] and hits[0].location is None
        assert index.stats().generation == 1
    assert _version(folder) == str(SCHEMA_VERSION) == "2"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bike.txt").write_text("The Velomax chain is oiled every 300 km.", encoding="utf-8")
    with Index.open(folder, embedder=HashingEmbedder()) as index:  # opening again runs nothing twice
        assert index.add([docs]).added
        assert {h.path for h in index.search("Velomax chain", 5, mode="keyword")} == {str(docs / "bike.txt")}


def test_a_new_index_runs_every_migration(tmp_path: Path) -> None:
    with Index.open(tmp_path / "index", create=True, embedder=HashingEmbedder()):
        pass
    assert _version(tmp_path / "index") == str(SCHEMA_VERSION)
    db = sqlite3.connect(tmp_path / "index" / DB_NAME)
    assert "location" in {row[1] for row in db.execute("PRAGMA table_info(chunks)")}
    db.close()


def test_an_index_from_a_newer_rt_is_refused_in_one_line(tmp_path: Path) -> None:
    folder = old_index(tmp_path / "index", with_location=True)
    db = sqlite3.connect(folder / DB_NAME)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(IndexMismatchError, match=r"newer rt \(schema 99, this rt knows up to 2\)") as caught:
        Index.open(folder)
    assert "\n" not in str(caught.value)


def test_two_processes_opening_an_old_index_at_once_migrate_it_once(tmp_path: Path) -> None:
    folder = old_index(tmp_path / "index", with_location=False)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_it() -> None:
        try:
            start.wait(timeout=60)
            Store(folder).close()
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert _version(folder) == "2"
    db = sqlite3.connect(folder / DB_NAME)
    assert [row[1] for row in db.execute("PRAGMA table_info(chunks)")].count("location") == 1
    db.close()


def test_a_reader_opening_the_file_while_a_writer_creates_its_tables_waits_for_them(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    folder.mkdir()
    # the writer's side: the file exists, its tables are being created in an open transaction
    db = sqlite3.connect(folder / DB_NAME, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("BEGIN IMMEDIATE")
    for statement in split_statements(_OLD_DDL.format(location="")):
        db.execute(statement)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1'), ('generation', '0')")
    opened: list[object] = []
    reader = threading.Thread(target=lambda: opened.append(_open_or_error(folder)))
    reader.start()
    reader.join(timeout=1.0)  # held by the open write transaction (or not started yet: either way)
    assert not opened
    db.execute("COMMIT")
    db.close()
    reader.join(timeout=60)
    assert opened and isinstance(opened[0], Store), opened
    opened[0].close()
    assert _version(folder) == str(SCHEMA_VERSION)  # and migrated as any open does


def _open_or_error(folder: Path) -> object:
    try:
        return Store(folder)
    except Exception as exc:  # noqa: BLE001 (the test shows it)
        return exc


def test_an_index_not_yet_in_wal_mode_opens_while_another_connection_holds_its_write_lock(tmp_path: Path) -> None:
    """SQLite refuses the switch to WAL mode at once, without its busy timeout, while another
    connection holds a write lock on a database in rollback-journal mode; opening such an index
    waits for the lock like any other write (the test above failed so on a loaded machine, when
    one of its four openers was migrating while another switched the journal)."""
    folder = old_index(tmp_path / "index", with_location=True)
    writer = sqlite3.connect(folder / DB_NAME, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(0.5, lambda: writer.execute("ROLLBACK"))
    releaser.start()
    try:
        Store(folder).close()  # the lock is held for at least 0.5 s from here
    finally:
        releaser.join()
        writer.close()
    assert _version(folder) == str(SCHEMA_VERSION)
