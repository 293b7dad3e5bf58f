"""The index's rows in PostgreSQL + pgvector: the same questions as the SQLite store, in SQL.

:class:`PostgresStore` answers what :class:`~runtime.index.store.Store` answers (documents,
chunks, vectors, settings, keyword search and term statistics), so the index, ingest and the
answering checks run unchanged on either. Differences that matter:

- Keyword scores are BM25 computed in SQL over a generated ``tsvector`` (FTS5's formula: k1 1.2,
  b 0.75, idf clamped at 1e-6, document length in model tokens), so fusion sees the same scale
  (runtime/index/stores/postgres_terms.py).
- Dense search is pgvector's HNSW cosine index in the database (:meth:`dense_search`).
- Document rows are written under a unique temporary name and renamed at commit under an
  advisory lock on the path: writers on several machines may index the same file at once, and
  a reader sees a file's old version or its new one, never half of it.
- PostgreSQL text holds no NUL, which rt's path keys use to escape undecodable bytes: paths are
  stored with ``\\`` doubled and NUL written ``\\0``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from runtime import env
from runtime.errors import IndexLockedError, IndexServerError
from runtime.index.chunking import Chunk
from runtime.index.scan import shown
from runtime.index.store import text_digest
from runtime.index.stores.base import ChunkRow, DocumentRecord
from runtime.index.stores.postgres_locks import write_lock
from runtime.index.stores.postgres_schema import (
    REBUILD_LOCK,
    SCHEMA,
    STAGING,
    applied,
    drop_staging,
    in_schema,
    migrate,
    switch_to_staging,
    type_vectors,
)
from runtime.index.stores.postgres_terms import PostgresTerms
from runtime.index.vectors import HNSW_EF_SEARCH
from runtime.redact import redact_credentials

logger = logging.getLogger(__name__)
T = TypeVar("T")
CONNECT_TIMEOUT = 10  # seconds, unless the URL says connect_timeout=
_PATH_ESCAPE = re.compile(r"\\(\\|0)")


def is_url(location: object) -> bool:
    """True if ``location`` (an ``--index`` value) names a PostgreSQL database."""
    return env.is_index_url(location)


def describe(url: str) -> str:
    """``url`` as messages, logs and ``--json`` show it: no user name, no password."""
    shown_url = redact_credentials(url)
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", shown_url)


def _encode_path(key: str) -> str:
    return key.replace("\\", "\\\\").replace("\x00", "\\0")


def _decode_path(stored: str) -> str:
    return _PATH_ESCAPE.sub(lambda m: "\x00" if m[1] == "0" else "\\", stored)


def connect(url: str) -> Any:
    """An autocommit connection with pgvector's types, or :class:`IndexServerError` saying why not."""
    try:
        import psycopg
    except ImportError:
        raise IndexServerError("a PostgreSQL index needs psycopg and pgvector, which are not installed",
                               hint="pip install 'rt[postgres]'") from None
    where = describe(url)
    options: dict[str, Any] = {} if "connect_timeout=" in url else {"connect_timeout": CONNECT_TIMEOUT}
    try:
        # prepare_threshold=None: no server-side prepared statements. A plan prepared before the
        # first writer gave the vector column its dimension fails afterwards ("cached plan must
        # not change result type"), and poolers in transaction mode (PgBouncer) refuse them.
        conn = psycopg.connect(url, autocommit=True, prepare_threshold=None, **options)
    except psycopg.Error as exc:
        raise connection_error(exc, where) from None
    except Exception as exc:  # a malformed URL (psycopg's conninfo parser raises ProgrammingError)
        raise IndexServerError(f"cannot use {where} as a PostgreSQL URL: {redact_credentials(str(exc))}",
                               where=where, hint="write it as postgresql://USER@HOST:PORT/DATABASE") from None
    try:
        from pgvector.psycopg import register_vector

        register_vector(conn)
    except psycopg.ProgrammingError:
        pass  # no vector type yet: check_server installs the extension, then it is registered
    return conn


def connection_error(exc: BaseException, where: str) -> IndexServerError:
    """One line for a failed connection: down, unreachable, refused credentials, no database."""
    text = redact_credentials(str(exc)).strip()
    first = text.splitlines()[-1] if text else type(exc).__name__
    lowered = text.lower()
    if "timeout expired" in lowered:
        return IndexServerError(f"the PostgreSQL server at {where} did not answer within the timeout",
                                where=where, hint="check the host, port and firewall (connect_timeout=SECONDS "
                                "in the URL waits longer)")
    if any(sign in lowered for sign in ("could not translate host name", "failed to resolve host",
                                        "name or service not known", "getaddrinfo failed")):
        return IndexServerError(f"the PostgreSQL server at {where} is unreachable: unknown host name",
                                where=where, hint="check the host in the URL")
    if "no route to host" in lowered or "network is unreachable" in lowered:
        return IndexServerError(f"the PostgreSQL server at {where} is unreachable: no route to it",
                                where=where, hint="check the network, VPN and host in the URL")
    if "connection refused" in lowered or "no such file or directory" in lowered:
        return IndexServerError(f"the PostgreSQL server at {where} is down: nothing accepts connections there",
                                where=where, hint="start the server, or check the host and port in the URL")
    if "password" in lowered and ("authentication failed" in lowered or "no password" in lowered):
        return IndexServerError(f"the PostgreSQL server at {where} refused the credentials",
                                where=where, hint="set PGPASSWORD or add a line to ~/.pgpass (never put a "
                                "password on the command line)")
    if "does not exist" in lowered and "database" in lowered:
        return IndexServerError(f"the PostgreSQL server at {where} has no such database",
                                where=where, hint="create it first (createdb NAME, or CREATE DATABASE NAME)")
    if "server closed the connection" in lowered or "terminating connection" in lowered:
        return IndexServerError(f"the PostgreSQL server at {where} closed the connection (restarted?)",
                                where=where, hint="run the command again once the server is back")
    return IndexServerError(f"cannot use the PostgreSQL server at {where}: {first}", where=where,
                            hint="check the URL and the server's log")


class PostgresStore(PostgresTerms):
    """One connection to an rt index in PostgreSQL; ``create`` makes or upgrades the schema."""

    def __init__(self, url: str, *, create: bool = False, schema: str = SCHEMA) -> None:
        self.url = url
        self.where = describe(url)
        self.schema = schema  # STAGING for the store a rebuild writes into
        self._rebuilding = False  # this connection holds REBUILD_LOCK
        self.conn = connect(url)
        try:
            if create:
                migrate(self.conn, self.where, schema)
                self._register_vector()
            self.exists = create or applied(self.conn)
        except BaseException:
            self.conn.close()
            raise

    def _register_vector(self) -> None:
        from pgvector.psycopg import register_vector

        register_vector(self.conn)

    def reconnect(self) -> None:
        """A fresh connection after the old one broke (the server restarted)."""
        with contextlib.suppress(Exception):
            self.conn.close()
        self.conn = connect(self.url)

    def close(self) -> None:
        self.conn.close()

    @property
    def location(self) -> str:
        return self.where

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.conn.info.transaction_status not in (TransactionStatus.IDLE, TransactionStatus.UNKNOWN)

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[None]:
        """One atomic write, or one consistent read snapshot (REPEATABLE READ); nested: a savepoint.
        A connection lost on the way is :class:`IndexServerError` (caused by psycopg's error)."""
        import psycopg

        outer = not self.in_transaction
        try:
            with self.conn.transaction():
                if outer and not write:
                    self._execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield
        except psycopg.OperationalError as exc:
            if not outer:
                raise
            raise connection_error(exc, self.where) from exc

    def retrying(self, call: Callable[[], T]) -> T:
        """``call()``, once more on a new connection if the server dropped the old one (a
        restart, a failover); a second failure is one line saying what happened."""
        import psycopg

        try:
            return call()
        except (IndexServerError, psycopg.OperationalError) as exc:
            cause = exc.__cause__ if isinstance(exc, IndexServerError) else exc
            if not isinstance(cause, psycopg.OperationalError):
                raise
            logger.warning("lost the connection to %s (%s); reconnecting and retrying once",
                           self.where, type(cause).__name__)
        self.reconnect()
        try:
            return call()
        except psycopg.OperationalError as exc:
            raise connection_error(exc, self.where) from exc

    def _execute(self, sql: str, params: Any = None) -> Any:
        return self.conn.execute(in_schema(sql, self.schema), params)

    def _rows(self, sql: str, params: Any = None) -> list[tuple]:
        return list(self._execute(sql, params).fetchall())

    # --- meta ---------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        if not self.exists:
            return {}
        return dict(self._rows("SELECT key, value FROM rt.meta"))

    def set_meta(self, **values: object) -> None:
        """Write meta keys (inside a transaction); a dimension types the vector column too."""
        self.conn.cursor().executemany(in_schema(
            "INSERT INTO rt.meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            self.schema), [(k, str(v)) for k, v in values.items()])
        if "dimension" in values:
            type_vectors(self.conn, int(str(values["dimension"])), self.schema)

    def delete_meta(self, *keys: str) -> None:
        self._execute("DELETE FROM rt.meta WHERE key = ANY(%s)", (list(keys),))

    def generation(self) -> int:
        return int(self._rows("SELECT value FROM rt.meta WHERE key = 'generation'")[0][0])

    def bump_generation(self) -> int:
        row = self._rows("UPDATE rt.meta SET value = (value::bigint + 1)::text WHERE key = 'generation' "
                         "RETURNING value")
        return int(row[0][0])

    # --- roots and documents ------------------------------------------------------------
    def roots(self) -> list[tuple[str, str, str]]:
        rows = self._rows("SELECT path, include, exclude FROM rt.roots ORDER BY path")
        return [(_decode_path(p), inc, exc) for p, inc, exc in rows]

    def set_root(self, path: str, include: str, exclude: str) -> None:
        self._execute("INSERT INTO rt.roots VALUES (%s, %s, %s) ON CONFLICT (path) DO UPDATE "
                          "SET include = excluded.include, exclude = excluded.exclude",
                          (_encode_path(path), include, exclude))

    def delete_roots(self, paths: Iterable[str]) -> None:
        self._execute("DELETE FROM rt.roots WHERE path = ANY(%s)", ([_encode_path(p) for p in paths],))

    def documents(self) -> dict[str, tuple[int, str]]:
        """``path -> (id, sha256)`` of every finished document."""
        rows = self._rows("SELECT path, id, sha256 FROM rt.documents WHERE position(%s in path) = 0",
                          (_encode_path("\x00new-"),))
        return {_decode_path(path): (int(doc_id), sha) for path, doc_id, sha in rows}

    def document_records(self) -> dict[str, DocumentRecord]:
        """``path -> what the index keeps about it`` of every finished document (for push)."""
        rows = self._rows("SELECT path, sha256, size, mtime, kind, encoding "
                          "FROM rt.documents WHERE position(%s in path) = 0", (_encode_path("\x00new-"),))
        return {_decode_path(r[0]): DocumentRecord(_decode_path(r[0]), r[1], int(r[2]), float(r[3]), r[4], r[5])
                for r in rows}

    def old_chunk_ids(self, document_id: int) -> dict[bytes, int]:
        rows = self._rows("SELECT text, id FROM rt.chunks WHERE document_id = %s", (document_id,))
        return {text_digest(text): int(chunk_id) for text, chunk_id in rows}

    def texts_and_vectors(self, document_ids: Sequence[int], limit: int) -> list[tuple[str, bytes]]:
        rows = self._rows("SELECT c.text, v.embedding FROM rt.chunks c JOIN rt.vectors v ON v.chunk_id = c.id "
                          "WHERE c.document_id = ANY(%s) LIMIT %s", (list(document_ids), limit))
        return [(text, _blob(vector)) for text, vector in rows]

    def vector_blobs(self, ids: Sequence[int]) -> dict[int, bytes]:
        rows = self._rows("SELECT chunk_id, embedding FROM rt.vectors WHERE chunk_id = ANY(%s)", (list(ids),))
        return {int(i): _blob(v) for i, v in rows}

    def delete_documents(self, paths: Iterable[str]) -> None:
        self._execute("DELETE FROM rt.documents WHERE path = ANY(%s)", ([_encode_path(p) for p in paths],))

    def discard_document(self, document_id: int) -> None:
        self._execute("DELETE FROM rt.documents WHERE id = %s", (document_id,))

    def rename_document(self, old: str, new: str) -> None:
        """Give the document at ``old`` the path ``new``, replacing one there (inside a transaction)."""
        self._lock_path(new)
        self._execute("DELETE FROM rt.documents WHERE path = %s", (_encode_path(new),))
        self._execute("UPDATE rt.documents SET path = %s WHERE path = %s", (_encode_path(new), _encode_path(old)))

    def begin_document(self, record: DocumentRecord, path: str, now: float) -> int:
        """Insert ``record`` under a name no other writer uses; :meth:`finish_document` names it."""
        temporary = f"{record.path}\x00new-{uuid.uuid4().hex}"
        row = self._rows(
            "INSERT INTO rt.documents (path, sha256, size, mtime, kind, encoding, n_chunks, indexed_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, 0, %s) RETURNING id",
            (_encode_path(temporary), record.sha256, record.size, record.mtime, record.kind, record.encoding, now))
        return int(row[0][0])

    def add_chunk(self, document_id: int, ordinal: int, chunk: Chunk, vector: bytes) -> None:
        self.add_chunks(document_id, [(ordinal, chunk, vector)])

    def add_chunks(self, document_id: int, rows: Sequence[tuple[int, Chunk, bytes]]) -> None:
        """Insert chunks of a begun document with their vectors (inside a transaction)."""
        if not rows:
            return
        values = []
        for ordinal, chunk, _ in rows:
            lines = chunk.lines or (None, None)
            values.append((document_id, ordinal, chunk.text.replace("\x00", "\ufffd"), chunk.page, lines[0],
                           lines[1], chunk.chars[0], chunk.chars[1], chunk.n_tokens, chunk.location))
        with self.conn.cursor() as cursor:
            cursor.executemany(in_schema(
                "INSERT INTO rt.chunks (document_id, ordinal, text, page, line_start, line_end, char_start, "
                "char_end, n_tokens, location) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                self.schema), values, returning=True)
            ids = []
            while True:
                ids.append(int(cursor.fetchone()[0]))
                if not cursor.nextset():
                    break
            cursor.executemany(in_schema("INSERT INTO rt.vectors VALUES (%s, %s)", self.schema),
                               [(i, np.frombuffer(blob, dtype=np.float32)) for i, (_, _, blob) in zip(ids, rows)])

    def put_document(self, record: DocumentRecord, chunks: Sequence[Chunk], vectors: Sequence[bytes],
                     now: float) -> None:
        """Insert or replace one document with its chunks and their vectors (inside a transaction)."""
        document_id = self.begin_document(record, record.path, now)
        self.add_chunks(document_id, [(i, c, v) for i, (c, v) in enumerate(zip(chunks, vectors))])
        self.finish_document(document_id, record.path, len(chunks))

    def finish_document(self, document_id: int, path: str, n_chunks: int) -> None:
        """Make a begun document the one at ``path`` (inside a transaction): the advisory lock on
        the path makes a second writer of the same file wait for the first, then replace it."""
        self._lock_path(path)
        encoded = _encode_path(path)
        self._execute("DELETE FROM rt.documents WHERE path = %s AND id != %s", (encoded, document_id))
        self._execute("UPDATE rt.documents SET path = %s, n_chunks = %s, n_tokens = (SELECT coalesce(sum("
                      "n_tokens), 0) FROM rt.chunks WHERE document_id = %s) WHERE id = %s",
                      (encoded, n_chunks, document_id, document_id))

    def _lock_path(self, path: str) -> None:
        self._execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (_encode_path(path),))

    def clear(self) -> None:
        self._execute("DELETE FROM rt.documents")
        self._execute("DELETE FROM rt.roots")

    @contextlib.contextmanager
    def writing(self, wait: float, *, exclusive: bool = False) -> Iterator[None]:
        """Shares the write lock with the other writers of the database, or holds it alone
        (``exclusive``: a rebuild), so that no write lands in an index a rebuild then replaces
        (runtime/index/stores/postgres_locks.py)."""
        import psycopg

        held = contextlib.ExitStack()
        try:
            held.enter_context(write_lock(self.conn, self.where, wait, exclusive=exclusive))
        except psycopg.OperationalError as exc:  # the server went away since the last statement
            raise connection_error(exc, self.where) from exc
        with held:
            try:
                yield
            finally:
                if self._rebuilding:  # a rebuild that failed before its switch: the next may start
                    self._rebuilding = False
                    with contextlib.suppress(Exception):
                        self._execute("SELECT pg_advisory_unlock(%s)", (REBUILD_LOCK,))

    # --- a rebuild: built beside the index, switched in at the end --------------------------
    def staging(self, meta: dict[str, object]) -> PostgresStore:
        """A new, empty index in the schema :data:`STAGING` recording ``meta`` (the rebuilt
        index's model and chunking), for :meth:`switch_to`. This connection holds
        :data:`REBUILD_LOCK` until then (or until it ends: a killed rebuild frees it), so two
        machines never rebuild one database at once; what a killed rebuild left is dropped."""
        if not self._rows("SELECT pg_try_advisory_lock(%s)", (REBUILD_LOCK,))[0][0]:
            raise IndexLockedError(f"another rt index --rebuild is rebuilding {self.where}",
                                   hint="wait for it to finish, then run this again")
        self._rebuilding = True
        drop_staging(self.conn)
        staged = PostgresStore(self.url, create=True, schema=STAGING)
        with staged.transaction():
            staged.set_meta(**meta, generation=self.generation() + 1)
        return staged

    def switch_to(self, staged: PostgresStore) -> None:
        """Replace this index by the finished rebuild ``staged``, in one transaction."""
        staged.close()
        switch_to_staging(self.conn)
        self._execute("SELECT pg_advisory_unlock(%s)", (REBUILD_LOCK,))
        self._rebuilding = False

    # --- reading --------------------------------------------------------------------------
    def nearest(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """``(chunk id, cosine similarity)`` of the ``k`` nearest vectors (HNSW), best first."""
        if k <= 0:
            return []
        with self.transaction(write=False):
            # ef_search bounds how many rows the HNSW scan can return (pgvector's default is 40)
            self._execute(f"SET LOCAL hnsw.ef_search = {max(HNSW_EF_SEARCH, 2 * int(k))}")
            rows = self._rows("SELECT chunk_id, 1 - (embedding <=> %(q)s) FROM rt.vectors "
                              "ORDER BY embedding <=> %(q)s LIMIT %(k)s",
                              {"q": np.asarray(query, dtype=np.float32).reshape(-1), "k": int(k)})
        return [(int(i), float(s)) for i, s in rows]

    def vectors_for(self, ids: Sequence[int], dimension: int) -> dict[int, np.ndarray]:
        rows = self._rows("SELECT chunk_id, embedding FROM rt.vectors WHERE chunk_id = ANY(%s)", (list(ids),))
        return {int(i): _array(v)[:dimension] for i, v in rows}

    def vector_blocks(self, dimension: int, rows: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids, vectors)`` of every chunk in id order, ``rows`` at a time (a server-side cursor)."""
        with self.transaction(write=False), self.conn.cursor(name=f"rt_vectors_{uuid.uuid4().hex}") as cursor:
            cursor.execute(in_schema("SELECT chunk_id, embedding FROM rt.vectors ORDER BY chunk_id", self.schema))
            while batch := cursor.fetchmany(rows):
                ids = np.fromiter((r[0] for r in batch), dtype=np.int64, count=len(batch))
                yield ids, np.stack([_array(r[1]) for r in batch]).reshape(len(batch), dimension)

    def vector_ids(self) -> np.ndarray:
        rows = self._rows("SELECT chunk_id FROM rt.vectors ORDER BY chunk_id")
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def sync_vectors(self) -> None:
        """Nothing to do: the HNSW index is part of the table, updated in each transaction."""

    def chunks_for(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        rows = self._rows(
            "SELECT c.id, d.path, c.text, c.page, c.line_start, c.line_end, c.char_start, c.char_end, c.location "
            "FROM rt.chunks c JOIN rt.documents d ON d.id = c.document_id WHERE c.id = ANY(%s)", (list(ids),))
        return {
            int(r[0]): ChunkRow(int(r[0]), shown(_decode_path(r[1])), r[2], r[3],
                                (r[4], r[5]) if r[4] is not None else None, (r[6], r[7]), r[8])
            for r in rows
        }

    def document_chunks(self, document_id: int) -> list[tuple[Chunk, bytes]]:
        """A document's chunks in reading order with their vectors (for push)."""
        rows = self._rows(
            "SELECT c.text, c.page, c.line_start, c.line_end, c.char_start, c.char_end, c.n_tokens, c.location, "
            "v.embedding FROM rt.chunks c JOIN rt.vectors v ON v.chunk_id = c.id WHERE c.document_id = %s "
            "ORDER BY c.ordinal", (document_id,))
        return [(Chunk(text=r[0], page=r[1], lines=(r[2], r[3]) if r[2] is not None else None, chars=(r[4], r[5]),
                       n_tokens=r[6], location=r[7]), _blob(r[8])) for r in rows]

    def chunk_ids_by_document(self) -> dict[str, list[int]]:
        rows = self._rows("SELECT d.path, c.id FROM rt.chunks c JOIN rt.documents d ON d.id = c.document_id "
                          "ORDER BY d.path, c.ordinal")
        out: dict[str, list[int]] = {}
        for path, chunk_id in rows:
            out.setdefault(_decode_path(path), []).append(int(chunk_id))
        return out

    def counts(self) -> tuple[int, int]:
        """``(documents, chunks)``."""
        if not self.exists:
            return 0, 0
        row = self._rows("SELECT (SELECT count(*) FROM rt.documents), (SELECT count(*) FROM rt.chunks)")[0]
        return int(row[0]), int(row[1])

    def size_bytes(self) -> int:
        """What rt's tables and their indexes take on the server."""
        row = self._rows("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                         "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'rt' AND c.relkind = 'r'")
        return int(row[0][0])


def _array(vector: Any) -> np.ndarray:
    """A vector column's value as float32 (pgvector's adapter gives a ``Vector``, or numpy)."""
    values = vector.to_numpy() if hasattr(vector, "to_numpy") else vector
    return np.asarray(values, dtype=np.float32)


def _blob(vector: Any) -> bytes:
    return _array(vector).tobytes()
