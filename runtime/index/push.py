"""``rt index push``: copy an index to another store (a folder to PostgreSQL, or back) as it is.

Documents, chunks and vectors are copied, never re-embedded: the embedding model is not even
loaded. The target mirrors the source afterwards. A document whose content hash is the same on
both sides is skipped, so a second push copies only what changed; documents gone from the source
are removed from the target. Documents are written a batch at a time, each batch one
transaction, so an interrupted push keeps whole documents and the next one carries on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import IndexMismatchError
from runtime.index.config import IndexOptions
from runtime.index.index import Index
from runtime.index.scan import shown
from runtime.index.stores.base import DocumentRecord

logger = logging.getLogger(__name__)
BATCH_DOCUMENTS = 64  # documents per transaction of the target


@dataclass
class PushReport:
    """What a push did: documents copied (new or changed), removed, unchanged, and chunks copied."""

    source: str
    target: str
    copied: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    chunks: int = 0
    seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (f"pushed {self.source} to {self.target}: {len(self.copied)} files copied "
                f"({self.chunks} chunks, {self.chunks_per_second:.0f} chunks/s), {len(self.removed)} removed, "
                f"{self.unchanged} unchanged, {self.seconds:.1f} s")

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "target": self.target, "copied": self.copied, "removed": self.removed,
                "unchanged": self.unchanged, "chunks": self.chunks, "seconds": round(self.seconds, 3),
                "chunks_per_second": round(self.chunks_per_second, 1)}


def push(source: str | Path, target: str | Path, *, wait: float = 0.0) -> PushReport:
    """Make the index at ``target`` (a folder or ``postgresql://`` URL, created if missing) hold
    what the index at ``source`` holds, copying vectors instead of embedding; see the module
    docstring. A target built with another embedding model or dimension is refused."""
    with Index.open(source) as origin:
        return copy_index(origin, target, wait=wait)


def copy_index(origin: Index, target: str | Path, *, wait: float = 0.0) -> PushReport:
    """:func:`push` from an open index."""
    started = time.monotonic()
    meta = origin.store.meta()
    if "dimension" not in meta:
        raise IndexMismatchError(f"the index at {origin.location} holds no vectors yet",
                                 hint="index some documents into it first")
    options = IndexOptions(embedding_model=origin.embedding_model, chunk_tokens=origin.options.chunk_tokens,
                           overlap_tokens=origin.options.overlap_tokens,
                           vector_index=origin.options.vector_index)
    with Index.open(target, create=True, embedding_model=origin.embedding_model, options=options,
                    wait=wait) as destination:
        report = PushReport(origin.location, destination.location)
        _check_dimension(destination, int(meta["dimension"]))
        # mostly new rows: build the target's vector index once at the end (a few changes: in place)
        bulk = len(destination.store.documents()) * 2 < len(origin.store.documents())
        with destination.writing(), _bulk(destination, bulk):
            _copy(origin, destination, int(meta["dimension"]), report)
            destination.store.sync_vectors()
    report.seconds = time.monotonic() - started
    logger.info("%s", report.summary())
    return report


def _bulk(destination: Index, bulk: bool) -> contextlib.AbstractContextManager[None]:
    """For a database, the HNSW index built once after the copy instead of row by row."""
    from runtime.index.stores.postgres import PostgresStore

    if bulk and isinstance(destination.store, PostgresStore):
        from runtime.index.stores.postgres_schema import hnsw_built_after

        return hnsw_built_after(destination.store.conn)
    return contextlib.nullcontext()


def _check_dimension(destination: Index, dimension: int) -> None:
    recorded = destination.store.meta().get("dimension")
    if recorded is not None and int(recorded) != dimension:
        raise IndexMismatchError(
            f"the index at {destination.location} holds {recorded}-dimensional vectors, the source {dimension}",
            hint="push to an empty index, or rebuild the target with the source's embedding model")
    if recorded is None:
        with destination.store.transaction():
            destination.store.set_meta(dimension=dimension)


def _copy(origin: Index, destination: Index, dimension: int, report: PushReport) -> None:
    with origin.store.transaction(write=False):
        records = origin.store.document_records()
        ids = origin.store.documents()
        roots = origin.store.roots()
    have = destination.store.documents()
    changed = [p for p, record in sorted(records.items()) if have.get(p, (0, ""))[1] != record.sha256]
    gone = sorted(p for p in have if p not in records)
    report.unchanged = len(records) - len(changed)
    for start in range(0, len(changed), BATCH_DOCUMENTS):
        _write_batch(origin, destination, changed[start:start + BATCH_DOCUMENTS], records, ids, report)
    with destination.store.transaction():
        destination.store.delete_documents(gone)
        for path, include, exclude in roots:
            destination.store.set_root(path, include, exclude)
        destination.store.bump_generation()
    report.removed = [shown(p) for p in gone]


def _write_batch(origin: Index, destination: Index, paths: list[str], records: dict[str, DocumentRecord],
                 ids: dict[str, tuple[int, str]], report: PushReport) -> None:
    """Copy the documents ``paths`` in one transaction of the target."""
    if not paths:
        return
    with origin.store.transaction(write=False):
        contents = {p: origin.store.document_chunks(ids[p][0]) for p in paths}
    now = time.time()
    with destination.store.transaction():
        for path in paths:
            rows = contents[path]
            destination.store.put_document(records[path], [c for c, _ in rows], [v for _, v in rows], now)
            report.chunks += len(rows)
            report.copied.append(shown(path))
        destination.store.bump_generation()
