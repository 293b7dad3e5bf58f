"""The index's source of truth: one SQLite database (WAL) with documents, chunks, vectors and FTS5.

Everything a search needs is in ``index.sqlite``: chunk text and location, each chunk's vector
as a float32 BLOB, and an FTS5 keyword index kept in step by triggers. Each commit bumps
``generation``; the FAISS file beside it is a cache named after the generation it was built
from (see :mod:`runtime.index.vectors`). A reader's transaction is a consistent snapshot even
while a writer commits (WAL).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from runtime.errors import IndexCorruptError, InsufficientDiskError
from runtime.fsutil import free_space, human_bytes
from runtime.index.chunking import Chunk
from runtime.index.scan import shown
from runtime.index.store_schema import SCHEMA_VERSION, migrate
from runtime.index.stores.base import ChunkRow, DocumentRecord

if TYPE_CHECKING:
    from runtime.index.stores.base import IndexStore
from runtime.index.vectors import VectorCache

T = TypeVar("T")

__all__ = ["DB_NAME", "SCHEMA_VERSION", "ChunkRow", "DocumentRecord", "Store", "fts_phrase", "keyword_query",
           "query_words", "text_digest"]

_SQLITE_FULL = 13  # sqlite3.SQLITE_FULL, named only from Python 3.11 (rt supports 3.10)
DB_NAME = "index.sqlite"

# The columns a rebuild copies, named: an index made before chunks had a location got the
# column appended.
_CHUNK_COLUMNS = ("id, document_id, ordinal, text, page, line_start, line_end, char_start, char_end, "
                  "n_tokens, location")
_DOCUMENT_COLUMNS = "id, path, sha256, size, mtime, kind, encoding, n_chunks, indexed_at"
# highlight() markers around a match: control characters no word contains
_OPEN, _CLOSE = "\x02", "\x03"
_MATCH = re.compile(_OPEN + "[^" + _CLOSE + "]*" + _CLOSE)


# Common English words dropped from keyword queries: they match most chunks, cost time and
# add nothing to BM25's ranking.
_STOPWORDS = frozenset(
    "a an and are as at be but by can do does did for from has have how i if in into is it its "
    "me my no not of on or our so than that the their them then there these they this to was "
    "we were what when where which who whom why will with would you your".split()
)


def text_digest(text: str) -> bytes:
    """A 16-byte digest of a chunk's text (to recognise unchanged chunks)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def query_words(text: str) -> list[str]:
    """The query's words that the keyword search looks for: lower-cased, stop words dropped, each once."""
    return list(dict.fromkeys(w for w in re.findall(r"\w+", text.lower()) if w not in _STOPWORDS))


def fts_phrase(word: str) -> str:
    """``word`` as an FTS5 phrase: quoted, its quotes doubled, so punctuation and keywords such as
    OR or NEAR are searched as text."""
    return '"' + word.replace('"', '""') + '"'


def keyword_query(text: str) -> str:
    """An FTS5 query matching any of the query's words (quoted, so punctuation is safe)."""
    return " OR ".join(fts_phrase(w) for w in query_words(text))


BUSY_TIMEOUT = 30.0  # seconds a connection waits for another's write lock


class Store:
    """The local :class:`~runtime.index.stores.base.IndexStore`: a connection to
    ``folder/index.sqlite``, with the FAISS cache of its vectors beside it (:class:`VectorCache`);
    ``create`` makes the schema if it is missing."""

    def __init__(self, folder: Path, *, create: bool = False) -> None:
        self.path = Path(folder) / DB_NAME
        self.vectors = VectorCache(Path(folder), self)
        try:
            self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None,
                                      check_same_thread=False)
            self._write_ahead_log()
            self.db.execute("PRAGMA foreign_keys=ON")
            migrate(self.db, str(self.path), self.transaction, create=create)
            if not create and not self._has_schema():
                self._wait_for_creator()
            if not self._has_schema():
                raise IndexCorruptError(f"{self.path} is not an rt index (no tables)",
                                        hint="run `rt index PATH --rebuild`")
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(f"cannot read {self.path}: {exc}",
                                    hint="run `rt index PATH --rebuild` to start over") from exc

    def _write_ahead_log(self) -> None:
        """``PRAGMA journal_mode=WAL``. On a database not yet in WAL mode (one made outside rt,
        or copied) SQLite answers "database is locked" at once, without its busy timeout, while
        another connection holds a write lock: two processes opening such an index together,
        one already migrating it. Retried for the busy timeout, as any other wait."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _wait_for_creator(self) -> None:
        """A database file without tables may be one a writer is creating this moment (``rt index``
        makes the file, then its tables in one transaction): wait for that transaction (the busy
        timeout), then look again; migrations it lacks run as on any open."""
        with contextlib.suppress(sqlite3.OperationalError):  # read-only, or still busy after the timeout
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("ROLLBACK")
        if self._has_schema():
            migrate(self.db, str(self.path), self.transaction, create=False)

    def _has_schema(self) -> bool:
        row = self.db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone()
        return row is not None

    def close(self) -> None:
        self.db.close()

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    @property
    def location(self) -> str:
        return str(self.path.parent)

    def retrying(self, call: Callable[[], T]) -> T:
        """``call()``: a file's connection does not drop."""
        return call()

    def size_bytes(self) -> int:
        """Bytes in the files of the index folder; a file another writer deletes meanwhile (an
        old vectors file) is skipped."""
        total = 0
        for path in self.path.parent.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.is_file():
                    total += path.stat().st_size
        return total

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[None]:
        """One atomic write (``BEGIN IMMEDIATE``) or one consistent read snapshot."""
        self.db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException as exc:
            if self.db.in_transaction:  # SQLite has already rolled back after some errors (a full disk)
                self.db.execute("ROLLBACK")
            if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
                raise InsufficientDiskError(
                    f"the disk holding {self.path} is full ({human_bytes(free_space(self.path.parent))} free)",
                    hint="free some space and run `rt index` again; what was committed is kept") from exc
            raise

    # --- meta ---------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, **values: object) -> None:
        """Write meta keys (call inside a transaction)."""
        self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                            [(k, str(v)) for k, v in values.items()])

    def delete_meta(self, *keys: str) -> None:
        """Remove meta keys (call inside a transaction)."""
        self.db.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k in keys])

    def generation(self) -> int:
        return int(self.db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    def bump_generation(self) -> int:
        self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
        return self.generation()

    # --- roots and documents ------------------------------------------------------------
    def roots(self) -> list[tuple[str, str, str]]:
        return self.db.execute("SELECT path, include, exclude FROM roots ORDER BY path").fetchall()

    def set_root(self, path: str, include: str, exclude: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO roots VALUES (?, ?, ?)", (path, include, exclude))

    def delete_roots(self, paths: Iterable[str]) -> None:
        self.db.executemany("DELETE FROM roots WHERE path = ?", [(p,) for p in paths])

    def documents(self) -> dict[str, tuple[int, str]]:
        """``path -> (id, sha256)`` of every indexed file."""
        rows = self.db.execute("SELECT path, id, sha256 FROM documents").fetchall()
        return {path: (doc_id, sha) for path, doc_id, sha in rows}

    def old_chunk_ids(self, document_id: int) -> dict[bytes, int]:
        """``digest of chunk text -> chunk id`` of a document, to reuse the vectors of unchanged
        chunks; digests keep this small for a file of any size."""
        rows = self.db.execute("SELECT text, id FROM chunks WHERE document_id = ?", (document_id,))
        return {text_digest(text): chunk_id for text, chunk_id in rows}

    def texts_and_vectors(self, document_ids: Sequence[int], limit: int) -> list[tuple[str, bytes]]:
        """``(chunk text, vector BLOB)`` of up to ``limit`` chunks of these documents."""
        rows: list[tuple[str, bytes]] = []
        for start in range(0, len(document_ids), 500):  # SQLite's host-parameter limit
            part = list(document_ids[start:start + 500])
            rows += self.db.execute(
                f"SELECT c.text, v.vector FROM chunks c JOIN vectors v ON v.chunk_id = c.id "
                f"WHERE c.document_id IN ({','.join('?' * len(part))}) LIMIT ?", (*part, limit - len(rows))).fetchall()
            if len(rows) >= limit:
                break
        return rows

    def vector_blobs(self, ids: Sequence[int]) -> dict[int, bytes]:
        """``chunk id -> vector BLOB``."""
        return dict(self._select_in("SELECT chunk_id, vector FROM vectors WHERE chunk_id IN ({})", ids))

    def delete_documents(self, paths: Iterable[str]) -> None:
        """Drop documents with their chunks, vectors and keyword entries (inside a transaction)."""
        self.db.executemany("DELETE FROM documents WHERE path = ?", [(p,) for p in paths])

    def begin_document(self, record: DocumentRecord, path: str, now: float) -> int:
        """Insert ``record`` under ``path`` (a temporary name while an older version is still
        there) with no chunks yet; return its id (inside a transaction)."""
        cursor = self.db.execute(
            "INSERT INTO documents (path, sha256, size, mtime, kind, encoding, n_chunks, indexed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
            (path, record.sha256, record.size, record.mtime, record.kind, record.encoding, now))
        return int(cursor.lastrowid or 0)

    def add_chunk(self, document_id: int, ordinal: int, chunk: Chunk, vector: bytes) -> None:
        """Insert one chunk of a begun document with its vector (inside a transaction)."""
        lines = chunk.lines or (None, None)
        cursor = self.db.execute(
            "INSERT INTO chunks (document_id, ordinal, text, page, line_start, line_end, "
            "char_start, char_end, n_tokens, location) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (document_id, ordinal, chunk.text, chunk.page, lines[0], lines[1], *chunk.chars,
             chunk.n_tokens, chunk.location))
        self.db.execute("INSERT INTO vectors VALUES (?, ?)", (cursor.lastrowid, vector))

    def finish_document(self, document_id: int, path: str, n_chunks: int) -> None:
        """Make a begun document the one at ``path``, replacing an older version (inside a
        transaction)."""
        self.db.execute("DELETE FROM documents WHERE path = ? AND id != ?", (path, document_id))
        self.db.execute("UPDATE documents SET path = ?, n_chunks = ? WHERE id = ?",
                        (path, n_chunks, document_id))

    def discard_document(self, document_id: int) -> None:
        """Drop a begun document that failed half-way, with its chunks (inside a transaction)."""
        self.db.execute("DELETE FROM documents WHERE id = ?", (document_id,))

    def rename_document(self, old: str, new: str) -> None:
        """Move the document at ``old`` to ``new``, replacing one there (inside a transaction)."""
        self.db.execute("DELETE FROM documents WHERE path = ?", (new,))
        self.db.execute("UPDATE documents SET path = ? WHERE path = ?", (new, old))

    def put_document(self, record: DocumentRecord, chunks: Sequence[Chunk], vectors: Sequence[bytes],
                     now: float) -> None:
        """Insert or replace one document with its chunks and their vectors (inside a transaction)."""
        document_id = self.begin_document(record, record.path + "\x00new", now)
        for ordinal, (chunk, vector) in enumerate(zip(chunks, vectors)):
            self.add_chunk(document_id, ordinal, chunk, vector)
        self.finish_document(document_id, record.path, len(chunks))

    def clear(self) -> None:
        """Remove every document and root (inside a transaction)."""
        self.db.execute("DELETE FROM documents")
        self.db.execute("DELETE FROM roots")

    def replace_with(self, other: Path) -> None:
        """Replace every row (and the settings, but the generation) by those of the database file
        ``other``, in one transaction; the generation goes up, so the vectors cache is rebuilt."""
        self.db.execute("ATTACH DATABASE ? AS staged", (str(other),))
        try:
            with self.transaction():
                self.clear()
                self.db.execute(f"INSERT INTO documents ({_DOCUMENT_COLUMNS}) "
                                f"SELECT {_DOCUMENT_COLUMNS} FROM staged.documents")
                self.db.execute(f"INSERT INTO chunks ({_CHUNK_COLUMNS}) SELECT {_CHUNK_COLUMNS} FROM staged.chunks")
                self.db.execute("INSERT INTO vectors (chunk_id, vector) SELECT chunk_id, vector FROM staged.vectors")
                self.db.execute("INSERT INTO roots (path, include, exclude) SELECT path, include, exclude "
                                "FROM staged.roots")
                self.db.execute("DELETE FROM meta WHERE key = 'dimension'")
                self.db.execute("INSERT OR REPLACE INTO meta (key, value) SELECT key, value FROM staged.meta "
                                "WHERE key NOT IN ('generation', 'schema_version')")
                self.bump_generation()
        finally:
            self.db.execute("DETACH DATABASE staged")

    # --- reading --------------------------------------------------------------------------
    def vector_blocks(self, dimension: int, rows: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids, vectors)`` of every chunk in id order, ``rows`` at a time."""
        cursor = self.db.execute("SELECT chunk_id, vector FROM vectors ORDER BY chunk_id")
        while batch := cursor.fetchmany(rows):
            ids = np.fromiter((r[0] for r in batch), dtype=np.int64, count=len(batch))
            if any(len(r[1]) != dimension * 4 for r in batch):
                raise IndexCorruptError(f"{self.path}: vectors do not have {dimension} dimensions",
                                        hint="run `rt index PATH --rebuild`")
            matrix = np.frombuffer(b"".join(r[1] for r in batch), dtype=np.float32)
            yield ids, matrix.reshape(len(batch), dimension)

    def vector_ids(self) -> np.ndarray:
        """The chunk ids that have a vector, ascending (int64)."""
        rows = self.db.execute("SELECT chunk_id FROM vectors ORDER BY chunk_id")
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def vectors_for(self, ids: Sequence[int], dimension: int) -> dict[int, np.ndarray]:
        rows = self._select_in("SELECT chunk_id, vector FROM vectors WHERE chunk_id IN ({})", ids)
        return {r[0]: np.frombuffer(r[1], dtype=np.float32, count=dimension) for r in rows}

    def document_records(self) -> dict[str, DocumentRecord]:
        rows = self.db.execute("SELECT path, sha256, size, mtime, kind, encoding FROM documents").fetchall()
        return {r[0]: DocumentRecord(*r) for r in rows}

    def document_chunks(self, document_id: int) -> list[tuple[Chunk, bytes]]:
        rows = self.db.execute(
            "SELECT c.text, c.page, c.line_start, c.line_end, c.char_start, c.char_end, c.n_tokens, c.location, "
            "v.vector FROM chunks c JOIN vectors v ON v.chunk_id = c.id WHERE c.document_id = ? ORDER BY c.ordinal",
            (document_id,)).fetchall()
        return [(Chunk(r[0], r[1], (r[2], r[3]) if r[2] is not None else None, (r[4], r[5]), r[6], r[7]), r[8])
                for r in rows]

    def chunks_for(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        rows = self._select_in(
            "SELECT c.id, d.path, c.text, c.page, c.line_start, c.line_end, c.char_start, c.char_end, "
            "c.location FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({})", ids)
        return {
            r[0]: ChunkRow(r[0], shown(r[1]), r[2], r[3], (r[4], r[5]) if r[4] is not None else None, (r[6], r[7]),
                          r[8])
            for r in rows
        }

    def keyword_search(self, query: str, limit: int) -> list[tuple[int, float]]:
        """``(chunk id, BM25 score)`` best first; higher is better (FTS5's bm25() negated)."""
        match = keyword_query(query)
        if not match:
            return []
        rows = self.db.execute(
            "SELECT rowid, bm25(chunks_fts) AS rank FROM chunks_fts WHERE chunks_fts MATCH ? "
            "ORDER BY rank LIMIT ?", (match, limit)).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def nearest(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest chunks by inner product, from the FAISS cache of this snapshot's
        generation (inside a read transaction)."""
        return self.vectors.search(vector, k)

    def writing(self, wait: float, *, exclusive: bool = False) -> contextlib.AbstractContextManager[None]:
        """Nothing beyond the folder's writer lock, which every writer of a folder takes."""
        return contextlib.nullcontext()

    def sync_vectors(self) -> None:
        """Save the FAISS cache of the committed generation (the writer lock is held)."""
        self.vectors.save()

    # --- the terms API (FTS5's tokenizer: stemmed, case- and accent-folded) -----------------
    def chunks_matching(self, word: str) -> int:
        """How many chunks hold ``word``."""
        sql = "SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
        row = self.db.execute(sql, (fts_phrase(word),)).fetchone()
        return int(row[0])

    def term_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """``term -> number of chunks holding it``."""
        return {term: self.chunks_matching(term) for term in terms}

    def chunks_holding(self, terms: Sequence[str], ids: Sequence[int]) -> dict[str, set[int]]:
        """``term -> the chunks among ids that hold it``."""
        sql = "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid IN ({})"
        return {term: {int(r[0]) for r in self._select_in(sql, ids, (fts_phrase(term),))} for term in terms}

    def match_offsets(self, word: str, ids: Sequence[int]) -> dict[int, list[int]]:
        """``chunk id -> character offsets of the matches of word`` among ``ids``, found by FTS5's
        ``highlight()`` so that no second tokenizer can disagree with the keyword search."""
        sql = (f"SELECT rowid, highlight(chunks_fts, 0, '{_OPEN}', '{_CLOSE}') FROM chunks_fts "
               "WHERE chunks_fts MATCH ? AND rowid IN ({})")
        out: dict[int, list[int]] = {}
        for chunk_id, marked in self._select_in(sql, ids, (fts_phrase(word),)):
            # each earlier match put two markers before this one: offset in the text = position - 2n
            out[int(chunk_id)] = [m.start() - 2 * n for n, m in enumerate(_MATCH.finditer(marked))]
        return out

    def document_spread(self, word: str) -> tuple[int, int]:
        """``(chunks holding word, of which in its most frequent document)``."""
        try:
            rows = self.db.execute(
                "SELECT COUNT(*) FROM chunks_fts f JOIN chunks c ON c.id = f.rowid WHERE chunks_fts MATCH ? "
                "GROUP BY c.document_id", (fts_phrase(word),)).fetchall()
        except sqlite3.OperationalError:  # a word FTS5 cannot parse as a phrase
            return 0, 0
        counts = [int(r[0]) for r in rows]
        return sum(counts), max(counts, default=0)

    def chunk_ids_by_document(self) -> dict[str, list[int]]:
        """``path -> its chunk ids in reading order``."""
        rows = self.db.execute("SELECT d.path, c.id FROM chunks c JOIN documents d ON d.id = c.document_id "
                               "ORDER BY d.path, c.ordinal")
        out: dict[str, list[int]] = {}
        for path, chunk_id in rows:
            out.setdefault(path, []).append(int(chunk_id))
        return out

    def chunks_holding_all(self, words: Sequence[str], limit: int = 50) -> list[int]:
        """Chunks that hold every one of ``words`` (FTS5's tokenizer, each word a quoted phrase)."""
        phrases = [fts_phrase(w) for w in words if w.strip()]
        if not phrases:
            return []
        rows = self.db.execute("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?",
                               (" AND ".join(phrases), limit))
        return [int(r[0]) for r in rows]

    def counts(self) -> tuple[int, int]:
        """``(documents, chunks)``."""
        docs = self.db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        chunks = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return int(docs), int(chunks)

    def _select_in(self, sql: str, ids: Sequence[int], before: tuple = ()) -> list[tuple]:
        """Rows of ``sql`` with its ``{}`` filled by ``ids`` (parameters after ``before``'s)."""
        rows: list[tuple] = []
        for start in range(0, len(ids), 500):  # SQLite's host-parameter limit
            part = list(ids[start:start + 500])
            rows += self.db.execute(sql.format(",".join("?" * len(part))), (*before, *part)).fetchall()
        return rows


if TYPE_CHECKING:  # mypy checks that this store keeps the protocol the Index talks to
    def _implements(store: Store) -> IndexStore:
        return store
