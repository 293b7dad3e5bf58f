"""Failure paths that must not leak handles or turn a harmless race into an internal error."""

from __future__ import annotations

import errno
import logging
import sqlite3
from pathlib import Path
from typing import IO, Any

import pytest

from runtime.errors import IndexLockedError, InsufficientDiskError
from runtime.index import Index, lock
from runtime.index.lock import WriteLock
from runtime.index.store import Store
from tests.hashing_embedder import HashingEmbedder


def test_a_failed_create_closes_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Store] = []

    def full_disk(self: Store, **values: object) -> None:
        opened.append(self)
        exc = sqlite3.OperationalError("database or disk is full")
        exc.sqlite_errorcode = 13  # SQLITE_FULL, as SQLite reports it when the disk fills
        raise exc

    monkeypatch.setattr(Store, "set_meta", full_disk)
    with pytest.raises(InsufficientDiskError, match="is full"):
        Index.open(tmp_path / "index", create=True, embedder=HashingEmbedder())
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].db.execute("SELECT 1")
    monkeypatch.undo()
    with Index.open(tmp_path / "index", create=True, embedder=HashingEmbedder()) as index:
        assert index.stats().documents == 0


class _NoSpaceFile:
    """A lock file on a full disk: locking works, writing the pid does not."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_the_lock_holds_even_when_the_pid_cannot_be_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    files: list[_NoSpaceFile] = []

    def open_full(path: Path, mode: str) -> _NoSpaceFile:
        files.append(_NoSpaceFile(open(path, mode)))  # noqa: SIM115 - closed by the lock
        return files[-1]

    monkeypatch.setattr(lock, "open", open_full, raising=False)
    path = tmp_path / "index.lock"
    with caplog.at_level(logging.DEBUG, logger="runtime.index.lock"), WriteLock(path) as held:
        assert held.held
        monkeypatch.undo()
        with pytest.raises(IndexLockedError, match="another process"):
            WriteLock(path).acquire()
    assert "could not write the pid" in caplog.text
    assert files[0].fh.closed
    with WriteLock(path):  # released
        pass


def test_stats_skips_a_vectors_file_deleted_meanwhile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "rent.txt").write_text("The rent is due on the first day of the month.")
    with Index.open(tmp_path / "index", create=True, embedder=HashingEmbedder()) as index:
        index.add([docs])
        vectors = sorted(index.folder.glob("vectors-*"))
        assert vectors
        is_file = Path.is_file

        def seen_then_deleted(self: Path) -> bool:  # another writer removes it right after it was listed
            found = is_file(self)
            if self in vectors:
                self.unlink()
            return found

        monkeypatch.setattr(Path, "is_file", seen_then_deleted)
        stats = index.stats()
        monkeypatch.undo()
        assert stats.documents == 1
        assert stats.size_bytes == sum(p.stat().st_size for p in index.folder.iterdir() if p.is_file())
