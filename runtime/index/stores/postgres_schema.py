"""The PostgreSQL store's schema: numbered migrations, applied under an advisory lock.

Everything lives in the schema ``rt`` of the database the URL names. ``rt.migrations`` records
which steps ran; a writer that opens the database runs the missing ones inside one transaction
while holding :data:`SCHEMA_LOCK`, so two machines opening a new database at once never both
create the tables. The vector column gets its dimension (and its HNSW index) when the first
embedder is known (:func:`type_vectors`): pgvector's HNSW needs a fixed dimension.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from runtime.errors import IndexServerError

SCHEMA_LOCK = 0x72745F736368  # pg_advisory_xact_lock key ("rt_sch"): schema changes, one at a time
REBUILD_LOCK = 0x72745F726562  # pg_advisory_lock key ("rt_reb"): one rebuild of a database at a time
SCHEMA = "rt"  # where the index lives
STAGING = "rt_rebuild"  # where `rt index --rebuild` builds the new index until it switches
# What the schema needs of the server, in one place: the checks and their messages read these.
MIN_SERVER = (13, 0)  # PostgreSQL 13: generated columns, websearch syntax, pgvector's HNSW build
MIN_PGVECTOR = (0, 5, 0)  # the first pgvector with HNSW
EXTENSION = "vector"  # pgvector's name in CREATE EXTENSION

# rt's keyword search is FTS5's "porter unicode61": stemmed, and no stop words at the index
# level (the query drops its own, runtime/index/store.py). PostgreSQL's 'english' drops 127
# stop words, so a question term such as "other" would count as absent from every chunk;
# rt.english stems the same way but keeps every word.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, """
CREATE TEXT SEARCH DICTIONARY rt.english_stem (TEMPLATE = snowball, Language = english);
CREATE TEXT SEARCH CONFIGURATION rt.english (COPY = pg_catalog.english);
ALTER TEXT SEARCH CONFIGURATION rt.english
    ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part WITH rt.english_stem;
CREATE TABLE rt.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE rt.roots (path text PRIMARY KEY, include text NOT NULL, exclude text NOT NULL);
CREATE TABLE rt.documents (
    id bigserial PRIMARY KEY, path text NOT NULL UNIQUE, sha256 text NOT NULL, size bigint NOT NULL,
    mtime double precision NOT NULL, kind text NOT NULL, encoding text, n_chunks integer NOT NULL,
    indexed_at double precision NOT NULL);
CREATE TABLE rt.chunks (
    id bigserial PRIMARY KEY,
    document_id bigint NOT NULL REFERENCES rt.documents(id) ON DELETE CASCADE,
    ordinal integer NOT NULL, text text NOT NULL, page integer, line_start integer, line_end integer,
    char_start integer NOT NULL, char_end integer NOT NULL, n_tokens integer NOT NULL, location text,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('rt.english'::regconfig, text)) STORED);
CREATE INDEX chunks_document ON rt.chunks (document_id);
CREATE INDEX chunks_tsv ON rt.chunks USING gin (tsv);
CREATE TABLE rt.vectors (
    chunk_id bigint PRIMARY KEY REFERENCES rt.chunks(id) ON DELETE CASCADE,
    embedding vector NOT NULL);
INSERT INTO rt.meta VALUES ('generation', '0');
"""),
    # A document's total of chunk tokens, so that keyword search reads BM25's corpus statistics
    # (chunks, average length) from the documents, not by scanning every chunk per query.
    (2, """
ALTER TABLE rt.documents ADD COLUMN n_tokens bigint NOT NULL DEFAULT 0;
UPDATE rt.documents d SET n_tokens = s.total
    FROM (SELECT document_id, sum(n_tokens) AS total FROM rt.chunks GROUP BY document_id) s
    WHERE s.document_id = d.id;
"""),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def in_schema(sql: str, schema: str) -> str:
    """``sql``, written for the schema ``rt``, for the schema ``schema`` (a rebuild's staging)."""
    return sql if schema == SCHEMA else re.sub(r"\brt\.", schema + ".", sql)


def migrate(conn: Any, where: str, schema: str = SCHEMA) -> None:
    """Bring the schema in ``conn``'s database up to :data:`SCHEMA_VERSION` (its own
    transaction; the advisory lock is released when it ends)."""
    check_server(conn, where)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(in_schema("CREATE TABLE IF NOT EXISTS rt.migrations (version integer PRIMARY KEY, "
                               "applied_at timestamptz NOT NULL DEFAULT now())", schema))
        done = {int(r[0]) for r in conn.execute(in_schema("SELECT version FROM rt.migrations", schema)).fetchall()}
        if done and max(done) > SCHEMA_VERSION:
            raise IndexServerError(
                f"the rt index in {where} has schema version {max(done)}; this rt knows up to {SCHEMA_VERSION}",
                hint="upgrade rt on this machine")
        for version, script in MIGRATIONS:
            if version not in done:
                conn.execute(in_schema(script, schema))
                conn.execute(in_schema("INSERT INTO rt.migrations (version) VALUES (%s)", schema), (version,))


def applied(conn: Any) -> bool:
    """True if the database holds rt's tables (read-only: nothing is created)."""
    row = conn.execute("SELECT to_regclass('rt.migrations') IS NOT NULL").fetchone()
    return bool(row and row[0]) and conn.execute("SELECT count(*) FROM rt.migrations").fetchone()[0] > 0


def check_server(conn: Any, where: str) -> None:
    """Refuse a server older than :data:`MIN_SERVER`, and one without a ``vector`` extension of
    :data:`MIN_PGVECTOR` or newer (installed here if the server has it and this role may)."""
    number = int(conn.info.server_version)  # as the server reports it: 180006 is 18.6
    version = (number // 10000, number % 10000)
    if version < MIN_SERVER:
        raise IndexServerError(
            f"the PostgreSQL server at {where} is version {_dotted(version)}; rt needs {_dotted(MIN_SERVER)} "
            "or newer", hint="upgrade the server (PostgreSQL 16 or newer with pgvector is a good choice)")
    with conn.transaction():
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = %s", (EXTENSION,)).fetchone()
    if row is None:
        available = conn.execute("SELECT default_version FROM pg_available_extensions "
                                 "WHERE name = %s", (EXTENSION,)).fetchone()
        if available is None:
            raise IndexServerError(
                f"the PostgreSQL server at {where} has no pgvector extension ('{EXTENSION}')",
                hint="install pgvector on the server (https://github.com/pgvector/pgvector#installation)")
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{EXTENSION}"')
        except Exception as exc:  # psycopg's InsufficientPrivilege, mostly
            raise IndexServerError(
                f"the pgvector extension is not enabled in {where} and this role may not enable it "
                f"({type(exc).__name__})",
                hint=f"ask the database owner to run `CREATE EXTENSION {EXTENSION};` in that database") from None
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = %s", (EXTENSION,)).fetchone()
    found = tuple(int(p) for p in str(row[0]).split(".")[:3] if p.isdigit())
    if found < MIN_PGVECTOR:
        raise IndexServerError(
            f"the pgvector extension in {where} is version {row[0]}; rt needs {_dotted(MIN_PGVECTOR)} or newer",
            hint="upgrade pgvector on the server, then run `ALTER EXTENSION vector UPDATE;` in that database")


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def type_vectors(conn: Any, dimension: int, schema: str = SCHEMA) -> None:
    """Give the vector column its dimension and build its HNSW cosine index (inside the
    caller's transaction; a no-op once done)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
    typed = conn.execute(in_schema(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'rt.vectors'::regclass AND attname = 'embedding'", schema)).fetchone()[0]
    if typed != f"vector({dimension})":
        conn.execute(in_schema(f"ALTER TABLE rt.vectors ALTER COLUMN embedding TYPE vector({int(dimension)})",
                               schema))
    # m and ef_construction as the local HNSW (runtime/index/vectors.py), so both stores trade
    # recall for speed alike.
    conn.execute(in_schema("CREATE INDEX IF NOT EXISTS vectors_hnsw ON rt.vectors USING hnsw "
                           "(embedding vector_cosine_ops) WITH (m = 32, ef_construction = 80)", schema))


@contextlib.contextmanager
def hnsw_built_after(conn: Any) -> Iterator[None]:
    """Load many vectors without the HNSW index and build it once at the end: inserting into
    the graph row by row made 87 chunks/s here, against 878 without it (plus about 1.5 ms per
    chunk to build it after). Searches meanwhile scan exactly; the index is back on exit, also
    after an error."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute("DROP INDEX IF EXISTS rt.vectors_hnsw")
    try:
        yield
    finally:
        typed = conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                             "'rt.vectors'::regclass AND attname = 'embedding'").fetchone()[0]
        dimension = int(typed[len("vector("):-1]) if typed.startswith("vector(") else 0
        if dimension:
            conn.execute("SET maintenance_work_mem = '512MB'")  # pgvector builds the graph in memory
            with conn.transaction():
                type_vectors(conn, dimension)
            conn.execute("RESET maintenance_work_mem")


def untype_vectors(conn: Any) -> None:
    """Drop the dimension and HNSW index (a rebuild may change the embedding model)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
    conn.execute("DROP INDEX IF EXISTS rt.vectors_hnsw")
    conn.execute("ALTER TABLE rt.vectors ALTER COLUMN embedding TYPE vector")


def drop_staging(conn: Any) -> None:
    """Remove what a killed rebuild left (the caller holds :data:`REBUILD_LOCK`)."""
    conn.execute(f"DROP SCHEMA IF EXISTS {STAGING} CASCADE")


def switch_to_staging(conn: Any) -> None:
    """Make the finished rebuild in :data:`STAGING` the index, in one transaction.

    The old tables are locked first, so the switch waits for readers in flight and readers that
    come after it wait for it to commit; each then sees the old index or the new one, never a
    mix. The old schema is dropped with its text search configuration: the new tables'
    generated ``tsvector`` refers to the staging schema's own one (by oid, so the rename keeps it).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute("LOCK TABLE rt.meta, rt.roots, rt.documents, rt.chunks, rt.vectors, rt.migrations "
                     "IN ACCESS EXCLUSIVE MODE")
        conn.execute(f"ALTER SCHEMA {SCHEMA} RENAME TO {SCHEMA}_replaced")
        conn.execute(f"ALTER SCHEMA {STAGING} RENAME TO {SCHEMA}")
        conn.execute(f"DROP SCHEMA {SCHEMA}_replaced CASCADE")
