"""The SQLite connection under a folder index, for tests that read its tables directly.

``Index.store`` is typed as the store protocol (a folder or a database server); these tests
check the folder store's own tables, so they ask for it by name and fail clearly otherwise.
"""

from __future__ import annotations

import sqlite3

from runtime.index import Index
from runtime.index.store import Store


def sqlite_db(index: Index) -> sqlite3.Connection:
    store = index.store
    assert isinstance(store, Store), f"a folder index was expected, not {type(store).__name__}"
    return store.db
