"""Write failures inside SQLite: a full disk is reported as such, and the index stays usable."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.errors import InsufficientDiskError
from runtime.index import Index
from runtime.index.lock import WriteLock
from tests.hashing_embedder import HashingEmbedder
from tests.index.sqlite_rows import sqlite_db


def test_full_disk_is_a_clear_error_and_the_index_stays_usable(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(8):
        (docs / f"note{i}.txt").write_text(f"Note {i}. " + "Plenty of words to store here. " * 400)
    with Index.open(tmp_path / "index", create=True, embedder=HashingEmbedder()) as index:
        # SQLite answers SQLITE_FULL when the database may not grow: a full disk, as far as it knows
        pages = sqlite_db(index).execute("PRAGMA page_count").fetchone()[0]
        sqlite_db(index).execute(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(InsufficientDiskError, match="is full"):
            index.add([docs])
        assert not sqlite_db(index).in_transaction
        with WriteLock(tmp_path / "index" / "index.lock"):  # the writer released its lock
            pass
        sqlite_db(index).execute("PRAGMA max_page_count = 1073741823")
        report = index.add([docs])
        assert len(report.added) == 8
        assert index.search("plenty of words", 3)
