"""The store protocol: everything the :class:`~runtime.index.Index` (and, through it, rag) asks of
the place an index lives.

A store owns its query language: callers never see SQL, a connection or a table name. Chunk ids
are the store's integers, stable while the chunk exists. Methods marked "inside a transaction"
are called between ``with store.transaction():`` and its end; reads outside one see the latest
commit. What is not here (the FAISS file's generations, the staged rebuild beside a folder) is
particular to the local SQLite store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

if TYPE_CHECKING:
    from runtime.index.chunking import Chunk


T = TypeVar("T")


@dataclass(frozen=True)
class ChunkRow:
    """A stored chunk with its document's path (as shown: see :func:`~runtime.index.scan.shown`)."""

    id: int
    path: str
    text: str
    page: int | None
    lines: tuple[int, int] | None
    chars: tuple[int, int]
    location: str | None = None


@dataclass(frozen=True)
class DocumentRecord:
    """What the index keeps about a file (``sha256`` is its content fingerprint)."""

    path: str
    sha256: str
    size: int
    mtime: float
    kind: str
    encoding: str | None


class TermStats(Protocol):
    """The terms API: how the index's keyword tokenizer sees words (stemmed, case- and
    accent-folded). Each word is searched as one quoted phrase, so punctuation and query
    keywords (OR, NEAR) are plain text. :class:`~runtime.index.Index` offers the same methods,
    each in its own read snapshot; rag calls them there."""

    def counts(self) -> tuple[int, int]:
        """``(documents, chunks)``."""
        ...

    def chunks_matching(self, word: str) -> int:
        """How many chunks hold ``word`` (its document frequency over chunks)."""
        ...

    def term_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """``term -> how many chunks hold it``."""
        ...

    def chunks_holding(self, terms: Sequence[str], ids: Sequence[int]) -> dict[str, set[int]]:
        """``term -> the chunks among ids that hold it``."""
        ...

    def chunks_holding_all(self, words: Sequence[str], limit: int = 50) -> list[int]:
        """Up to ``limit`` chunks that hold every one of ``words``."""
        ...

    def match_offsets(self, word: str, ids: Sequence[int]) -> dict[int, list[int]]:
        """``chunk id -> character offsets in its text where word matches``, among ``ids``."""
        ...

    def document_spread(self, word: str) -> tuple[int, int]:
        """``(chunks holding word, of which in the document holding it most)``; ``(0, 0)`` for a
        word the tokenizer cannot search."""
        ...


class IndexStore(TermStats, Protocol):
    """A store of documents, their chunks and vectors, and the index's settings."""

    def close(self) -> None: ...

    @property
    def location(self) -> str:
        """Where the store is, as messages and ``--json`` show it: a folder, or a URL without
        credentials."""
        ...

    def retrying(self, call: Callable[[], T]) -> T:
        """``call()`` (a read); a store whose connection can drop (a database server restarting)
        runs it once more on a new connection."""
        ...

    def size_bytes(self) -> int:
        """What the index takes: its folder's files, or its tables and their indexes."""
        ...

    def transaction(self, *, write: bool = True) -> AbstractContextManager[None]:
        """One atomic write, or (``write=False``) one consistent read snapshot."""
        ...

    @property
    def in_transaction(self) -> bool: ...

    # --- settings: the embedding model, dimension, chunking, generation, callers' keys ---
    def meta(self) -> dict[str, str]: ...

    def set_meta(self, **values: object) -> None:
        """Write settings (inside a transaction)."""
        ...

    def delete_meta(self, *keys: str) -> None:
        """Remove settings (inside a transaction)."""
        ...

    def generation(self) -> int:
        """A number that every committed change raises."""
        ...

    def bump_generation(self) -> int: ...

    # --- roots: the folders `rt index` was given, with their globs ---
    def roots(self) -> list[tuple[str, str, str]]:
        """``(path, include, exclude)``, globs one per line."""
        ...

    def set_root(self, path: str, include: str, exclude: str) -> None: ...

    def delete_roots(self, paths: Iterable[str]) -> None: ...

    # --- documents: one file's rows are replaced inside one transaction ---
    def documents(self) -> dict[str, tuple[int, str]]:
        """``path -> (document id, sha256)`` of every indexed file."""
        ...

    def document_records(self) -> dict[str, DocumentRecord]:
        """``path -> what the index keeps about it`` of every indexed file (``rt index push``)."""
        ...

    def document_chunks(self, document_id: int) -> list[tuple[Chunk, bytes]]:
        """A document's chunks in reading order with their float32 vector bytes (``rt index push``)."""
        ...

    def old_chunk_ids(self, document_id: int) -> dict[bytes, int]:
        """``text_digest(chunk text) -> chunk id`` of a document, to reuse unchanged chunks' vectors."""
        ...

    def texts_and_vectors(self, document_ids: Sequence[int], limit: int) -> list[tuple[str, bytes]]:
        """``(chunk text, float32 vector bytes)`` of up to ``limit`` chunks of these documents."""
        ...

    def begin_document(self, record: DocumentRecord, path: str, now: float) -> int:
        """Insert ``record`` under a temporary ``path`` with no chunks; its id (inside a transaction)."""
        ...

    def add_chunk(self, document_id: int, ordinal: int, chunk: Chunk, vector: bytes) -> None:
        """One chunk of a begun document with its vector (inside a transaction)."""
        ...

    def finish_document(self, document_id: int, path: str, n_chunks: int) -> None:
        """Make a begun document the one at ``path``, replacing an older one (inside a transaction)."""
        ...

    def discard_document(self, document_id: int) -> None:
        """Drop a begun document that failed half-way (inside a transaction)."""
        ...

    def put_document(self, record: DocumentRecord, chunks: Sequence[Chunk], vectors: Sequence[bytes],
                     now: float) -> None:
        """Insert or replace one document with its chunks and vectors (inside a transaction)."""
        ...

    def delete_documents(self, paths: Iterable[str]) -> None:
        """Drop documents with their chunks, vectors and keyword entries (inside a transaction)."""
        ...

    def rename_document(self, old: str, new: str) -> None:
        """Move a document to ``new``, replacing one there, keeping its chunks (inside a transaction)."""
        ...

    def clear(self) -> None:
        """Remove every document and root (inside a transaction)."""
        ...

    # --- reading ---
    def chunks_for(self, ids: Sequence[int]) -> dict[int, ChunkRow]: ...

    def chunk_ids_by_document(self) -> dict[str, list[int]]:
        """``path -> its chunk ids in reading order``."""
        ...

    def keyword_search(self, query: str, limit: int) -> list[tuple[int, float]]:
        """``(chunk id, score)`` best first, higher better (BM25 for SQLite's FTS5)."""
        ...

    # --- vectors: float32, unit length, ``dimension`` from the settings ---
    def vector_blocks(self, dimension: int, rows: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids, vectors)`` of every chunk in id order, ``rows`` at a time."""
        ...

    def vector_ids(self) -> np.ndarray:
        """The chunk ids that have a vector, ascending (int64)."""
        ...

    def vector_blobs(self, ids: Sequence[int]) -> dict[int, bytes]: ...

    def vectors_for(self, ids: Sequence[int], dimension: int) -> dict[int, np.ndarray]: ...

    def nearest(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` chunks whose vectors have the largest inner product with ``vector``, best
        first (inside a read transaction: the same snapshot as the chunks)."""
        ...

    def sync_vectors(self) -> None:
        """Bring a vector search structure kept beside the rows up to date after writes (the
        writer lock is held); nothing to do for a store that searches its own rows."""
        ...

    def writing(self, wait: float, *, exclusive: bool = False) -> AbstractContextManager[None]:
        """Held around one run of writes (with the folder's writer lock): a store that writers on
        several machines share makes a write wait up to ``wait`` seconds for a rebuild to switch
        in, and keeps a rebuild from switching in under it; ``exclusive`` is the rebuild's own
        run, which waits for the other writers. :class:`~runtime.errors.IndexLockedError` once
        ``wait`` has passed. Nothing to do for a folder, whose writer lock covers every writer."""
        ...
