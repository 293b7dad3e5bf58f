"""The documents index: open or create it, add and remove paths, search it.

>>> with Index.open("my-index", create=True) as index:      # doctest: +SKIP
...     print(index.add(["~/notes"]).summary())
...     for hit in index.search("when is the rent due?"):
...         print(hit.path, hit.lines, hit.similarity)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from runtime import env
from runtime.errors import IndexMismatchError, IndexNotFoundError
from runtime.fsutil import check_path_length
from runtime.index.config import DEFAULT_EMBEDDING_MODEL, IndexOptions, check_mode
from runtime.index.embedders.base import Embedder, canonical_model_name, embed_query
from runtime.index.embedders.factory import query_embedder
from runtime.index.embedders.light import LightEmbedder
from runtime.index.embedders.sentence_transformers import SentenceTransformerEmbedder
from runtime.index.ingest import IndexReport, Ingest
from runtime.index.lock import WriteLock
from runtime.index.rebuild import discard_staging, initialise, open_for_writing, staging_store, switch
from runtime.index.rerank import Reranker, rerank
from runtime.index.scan import is_under, key_path, path_key, shown
from runtime.index.search import Hit, ranked_hits, repair_text
from runtime.index.store import DB_NAME, Store
from runtime.index.stores.base import ChunkRow, IndexStore
from runtime.index.terms import idf_weights
from runtime.index.vectors import vectors_file

if TYPE_CHECKING:
    from runtime.index.stores.base import TermStats

logger = logging.getLogger(__name__)
LOCK_NAME = "index.lock"
SETTING_PREFIX = "setting."  # meta keys that callers above the index own (kept apart from the index's own)


@dataclass(frozen=True)
class IndexStats:
    """What an index holds and how big it is on disk."""

    folder: Path
    documents: int
    chunks: int
    embedding_model: str
    dimension: int | None
    vector_index: str
    generation: int
    roots: tuple[str, ...]
    size_bytes: int
    location: str = ""  # where the index is as people may see it: the folder, or a URL without credentials

    def __post_init__(self) -> None:
        if not self.location:
            object.__setattr__(self, "location", str(self.folder))


class Index:
    """A folder holding ``index.sqlite`` (the truth) and ``vectors-<generation>.faiss`` (a cache).

    Readers never lock; every search runs on one consistent snapshot. Writers (``add``,
    ``remove``, ``refresh``) take a file lock and fail with :class:`IndexLockedError` when
    another process holds it for longer than ``wait`` seconds.
    """

    def __init__(self, folder: Path, store: IndexStore, options: IndexOptions,
                 embedder: Embedder | None, wait: float) -> None:
        self.folder = folder
        self.store = store
        self.options = options
        self.wait = wait
        self._embedder = embedder
        self.reranker: Reranker | None = None  # a second stage for search (--rerank MODEL)
        self._mutex = threading.RLock()
        self._rebuild: dict[str, object] | None = None  # the new index's meta, until a write builds it
        self._target = store  # where writes go: a rebuild's own store while it is being built

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | Path | None = None, *, create: bool = False,
             embedding_model: str | None = None, options: IndexOptions | None = None,
             embedder: Embedder | None = None, rebuild: bool = False, wait: float = 0.0) -> Index:
        """Open the index in ``folder`` (default: ``RT_INDEX`` or ``RT_HOME/index``).

        ``create`` makes a new index if none is there; ``rebuild`` starts an existing one over (and
        may switch its embedding model): the next :meth:`add` or :meth:`refresh` builds the new
        index beside the old one and replaces it when done, so the old one stays searchable and
        whole if that write is interrupted. ``embedding_model`` (a sentence-transformers name or
        folder) must match the one the index was built with, else :class:`IndexMismatchError`.
        ``embedder`` plugs in an already-loaded model. Chunking settings recorded in the index
        win over ``options`` unless rebuilding.
        """
        location = folder or env.default_index()
        options = options or IndexOptions()
        wanted = embedder.name if embedder else (canonical_model_name(embedding_model) if embedding_model else None)
        if env.is_index_url(location):  # a PostgreSQL database (runtime/index/stores/postgres.py)
            from runtime.index.stores.postgres_open import local_folder, open_database

            database, options, staged_meta = open_database(str(location), options, wanted, create=create,
                                                           rebuild=rebuild)
            opened = cls(local_folder(str(location)), database, options, embedder, wait)
            opened._rebuild = staged_meta
            return opened
        folder = Path(location).expanduser()
        folder = folder.resolve()
        if not (folder / DB_NAME).exists() and not (create or rebuild):
            raise IndexNotFoundError(f"no index at {folder}", hint="run `rt index PATH` to build one")
        model = wanted or canonical_model_name(options.embedding_model)
        staged = False
        if create or rebuild:
            check_path_length(vectors_file(folder, 10**9))  # Windows' MAX_PATH: the longest name here
            with WriteLock(folder / LOCK_NAME, wait=wait):
                store = open_for_writing(folder, rebuild)
                try:
                    staged = rebuild and store.counts()[0] > 0 and "embedding_model" in store.meta()
                    initialise(store, folder, options, model, rebuild and not staged)
                except BaseException:  # a full disk, say: don't leave the connection open (Windows)
                    store.close()
                    raise
        else:
            store = Store(folder)
        meta = store.meta()
        recorded = meta.get("embedding_model")
        if recorded is None:  # killed between creating the tables and recording the model
            store.close()
            raise IndexNotFoundError(f"the index at {folder} was never finished",
                                     hint="run `rt index PATH` to build it")
        if staged:
            index = cls(folder, store, dataclasses.replace(options, embedding_model=model), embedder, wait)
            index._rebuild = dict(embedding_model=model, chunk_tokens=options.chunk_tokens,
                                  overlap_tokens=options.overlap_tokens, vector_index=options.vector_index,
                                  chunker=options.chunker)
            return index
        if wanted and wanted != recorded:
            store.close()
            raise IndexMismatchError(
                f"the index at {folder} was built with embedding model {recorded} "
                f"({meta.get('dimension', '?')} dimensions), not {wanted}",
                hint=f"search without --embedding-model, or re-embed everything with "
                f"`rt index --rebuild --embedding-model {wanted}`",
            )
        options = dataclasses.replace(
            options, embedding_model=recorded, chunk_tokens=int(meta["chunk_tokens"]),
            overlap_tokens=int(meta["overlap_tokens"]), vector_index=meta["vector_index"],
            chunker=int(meta.get("chunker", 1)))  # an index made before chunker 2 keeps chunking as it did
        return cls(folder, store, options, embedder, wait)

    @property
    def location(self) -> str:
        """Where the index is, as messages and ``--json`` show it (a folder, or a URL without
        credentials)."""
        return self.store.location

    @property
    def default_k(self) -> int:
        return self.options.k

    @property
    def embedding_model(self) -> str:
        return self.options.embedding_model

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use and checked against the index's dimension
        (for searching: :func:`~runtime.index.embedders.factory.query_embedder`)."""
        with self._mutex:
            return self._checked_embedder()

    @embedder.setter
    def embedder(self, embedder: Embedder) -> None:
        """Search with ``embedder`` from now on (a wrapper of the loaded one, say); it is checked
        against the index's dimension."""
        with self._mutex:
            self._embedder = embedder
            self._checked_embedder()

    @property
    def writing_embedder(self) -> Embedder:
        """The embedder :meth:`add` uses: a plugged-in one, else sentence-transformers (its
        batched forward is faster on many chunks), replacing the numpy one searches loaded."""
        with self._mutex:
            if self._embedder is None or isinstance(self._embedder, LightEmbedder):
                self._embedder = SentenceTransformerEmbedder(self._model_spec(), batch_size=self.options.batch_size)
            return self._checked_embedder()

    def _model_spec(self) -> str | None:
        return None if self.embedding_model == DEFAULT_EMBEDDING_MODEL else self.embedding_model

    def _checked_embedder(self) -> Embedder:
        if self._embedder is None:  # searching: the numpy embedder where it reproduces the model
            self._embedder = query_embedder(self._model_spec(), batch_size=self.options.batch_size,
                                            light=self.options.light_embedder)
        recorded = self._target.meta().get("dimension")
        if recorded is not None and int(recorded) != self._embedder.dimension:
            raise IndexMismatchError(
                f"the index at {self.folder} holds {recorded}-dimensional vectors, but embedding model "
                f"{self._embedder.name} makes {self._embedder.dimension}-dimensional ones",
                hint="use the model the index was built with, or `rt index --rebuild`")
        return self._embedder

    # --- writing --------------------------------------------------------------------------
    def add(self, paths: Iterable[str | Path], *, include: Sequence[str] = (),
            exclude: Sequence[str] = (), progress: bool = False, follow_symlinks: bool = False) -> IndexReport:
        """Index the files under ``paths`` (folders or files): embed new and changed files, drop
        the chunks of files that vanished from them. Re-running is cheap: unchanged files are
        recognised by content hash and not read again by the model. Symbolic links inside the
        folders are skipped (and counted) unless ``follow_symlinks``."""
        roots = [(Path(p).expanduser().resolve(), tuple(include), tuple(exclude)) for p in paths]
        return self._write(roots, progress, follow_symlinks)

    def refresh(self, *, progress: bool = False, follow_symlinks: bool = False) -> IndexReport:
        """Re-run :meth:`add` over every path added before, with the globs it was added with."""
        roots = [(key_path(p), tuple(filter(None, inc.split("\n"))), tuple(filter(None, exc.split("\n"))))
                 for p, inc, exc in self.store.roots()]
        return self._write(roots, progress, follow_symlinks)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Held around each run of writes: this process's lock on the index, the folder's writer
        lock, and the store's (a database shared by several machines: wait for a rebuild to
        switch in, or keep one from switching in under these writes). A write that waited for a
        rebuild with another embedder or chunking is refused rather than mixed into it."""
        with self._mutex, WriteLock(self.folder / LOCK_NAME, wait=self.wait), \
                self.store.writing(self.wait, exclusive=self._rebuild is not None):
            if self._rebuild is None:
                self._check_not_rebuilt()
            yield

    def _check_not_rebuilt(self) -> None:
        meta = self.store.meta()
        recorded = (meta.get("embedding_model"), meta.get("chunk_tokens"), meta.get("overlap_tokens"))
        opened = (self.options.embedding_model, str(self.options.chunk_tokens), str(self.options.overlap_tokens))
        if None not in recorded and recorded != opened:
            raise IndexMismatchError(
                f"the index at {self.location} was rebuilt (embedding model {recorded[0]}, chunks of "
                f"{recorded[1]} tokens) after it was opened here with {opened[0]}, {opened[1]} tokens",
                hint="run the command again: it opens the rebuilt index")

    def _write(self, roots: list[tuple[Path, tuple[str, ...], tuple[str, ...]]], progress: bool,
               follow_symlinks: bool) -> IndexReport:
        with self.writing():
            if self._rebuild is None:
                discard_staging(self.folder)  # what a killed rebuild left
                report = Ingest(self.store, self._writer_embedder, self.options, progress=progress,
                                index_folder=self.folder, follow_symlinks=follow_symlinks).run(roots)
            else:
                report = self._rebuilt(roots, progress, follow_symlinks)
            self.store.sync_vectors()
        return report

    def _rebuilt(self, roots: list[tuple[Path, tuple[str, ...], tuple[str, ...]]], progress: bool,
                 follow_symlinks: bool) -> IndexReport:
        """Build the index of ``roots`` beside this one, then replace this one's rows with it."""
        staged = staging_store(self.folder, self._rebuild or {}, self.store)
        self._target = staged
        try:
            report = Ingest(staged, self._writer_embedder, self.options, progress=progress,
                            index_folder=self.folder, follow_symlinks=follow_symlinks).run(roots)
            switch(self.store, staged)
            self._rebuild = None
        finally:
            self._target = self.store
            staged.close()
            discard_staging(self.folder)
        return report

    def remove(self, paths: Iterable[str | Path]) -> list[str]:
        """Forget the files at or under ``paths`` (and stop refreshing those roots); return what went."""
        targets = [path_key(Path(p).expanduser().resolve()) for p in paths]
        with self.writing():
            gone = [p for p in self.store.documents() if any(is_under(p, t) for t in targets)]
            with self.store.transaction():
                self.store.delete_documents(gone)
                self.store.delete_roots(targets)
                self.store.bump_generation()
            self.store.sync_vectors()
        return sorted(shown(g) for g in gone)

    def rename(self, old: str | Path, new: str | Path) -> int:
        """Move the documents at or under ``old`` to ``new`` (a file or folder renamed on disk),
        keeping their chunks and vectors; return how many moved."""
        source, target = (path_key(Path(p).expanduser().resolve()) for p in (old, new))
        with self.writing():
            moved = [p for p in self.store.documents() if is_under(p, source)]
            with self.store.transaction():
                for path in moved:
                    self.store.rename_document(path, target + path[len(source):])
                if moved:
                    self.store.bump_generation()
            if moved:
                self.store.sync_vectors()
        return len(moved)

    def _writer_embedder(self) -> Embedder:
        embedder = self.writing_embedder
        target = self._target
        if "dimension" not in target.meta():
            if target.in_transaction:  # the ingest's open batch: commits with it
                target.set_meta(dimension=embedder.dimension)
            else:
                with target.transaction():
                    target.set_meta(dimension=embedder.dimension)
        return embedder

    # --- reading --------------------------------------------------------------------------
    def search(self, query: str, k: int | None = None, *, mode: str | None = None) -> list[Hit]:
        """The ``k`` chunks that best match ``query``, best first (``mode``: hybrid, dense, keyword).

        With a :attr:`reranker`, the first ``IndexOptions.rerank_candidates`` hits are rescored
        by it and the ``k`` best of those are returned. A store whose connection can drop (a
        database server restarting) runs it once more on a new connection.
        """
        return self.store.retrying(lambda: self._search(query, k, mode))

    def _search(self, query: str, k: int | None, mode: str | None) -> list[Hit]:
        mode = check_mode(mode or self.options.mode)
        query = repair_text(query)
        k = k or self.default_k
        first = max(k, self.options.rerank_candidates) if self.reranker is not None else k
        query_vector = embed_query(self.embedder, query) if mode != "keyword" else None
        with self._mutex, self.store.transaction(write=False):
            hits = ranked_hits(self.store, query, query_vector, mode, first, self.options)
        return rerank(self.reranker, query, hits, k) if self.reranker is not None else hits

    def stats(self) -> IndexStats:
        """Counts, the embedding model and the size of the index (its folder, or its tables)."""
        return self.store.retrying(self._stats)

    def _stats(self) -> IndexStats:
        with self._mutex, self.store.transaction(write=False):
            documents, chunks = self.store.counts()
            meta = self.store.meta()
            roots = tuple(shown(r[0]) for r in self.store.roots())
            size = self.store.size_bytes()
        return IndexStats(self.folder, documents, chunks, meta["embedding_model"],
                          int(meta["dimension"]) if "dimension" in meta else None,
                          meta["vector_index"], int(meta["generation"]), roots, size, self.location)

    # --- what rt eval reads and writes ------------------------------------------------------
    def chunk_ids_by_document(self) -> dict[str, list[int]]:
        """``path -> its chunk ids in reading order``, for every indexed file."""
        with self._mutex, self.store.transaction(write=False):
            return self.store.chunk_ids_by_document()

    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """``chunk id -> its text, file and place``."""
        with self._mutex, self.store.transaction(write=False):
            return self.store.chunks_for(ids)

    # --- the terms API (the store's keyword tokenizer; one read snapshot per call) -----------
    def counts(self) -> tuple[int, int]:
        """``(documents, chunks)``."""
        with self._mutex, self.store.transaction(write=False):
            return self.store.counts()

    def chunks_matching(self, word: str) -> int:
        """How many chunks hold ``word`` (stemmed as keyword search stems)."""
        with self._mutex, self.store.transaction(write=False):
            return self.store.chunks_matching(word)

    def term_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """``term -> how many chunks hold it``."""
        with self._mutex, self.store.transaction(write=False):
            return self.store.term_frequencies(terms)

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """``term -> its inverse document frequency over the chunks`` (:func:`~runtime.index.terms.idf`)."""
        with self._mutex, self.store.transaction(write=False):
            return idf_weights(self.store, terms)

    def chunks_holding(self, terms: Sequence[str], ids: Sequence[int]) -> dict[str, set[int]]:
        """``term -> the chunks among ids that hold it``."""
        with self._mutex, self.store.transaction(write=False):
            return self.store.chunks_holding(terms, ids)

    def chunks_holding_all(self, words: Sequence[str], limit: int = 50) -> list[int]:
        """Chunks whose text holds every one of ``words`` (stemmed as keyword search stems)."""
        with self._mutex, self.store.transaction(write=False):
            return self.store.chunks_holding_all(words, limit)

    def match_offsets(self, word: str, ids: Sequence[int]) -> dict[int, list[int]]:
        """``chunk id -> character offsets where word matches`` among ``ids``."""
        with self._mutex, self.store.transaction(write=False):
            return self.store.match_offsets(word, ids)

    def document_spread(self, word: str) -> tuple[int, int]:
        """``(chunks holding word, of which in the document holding it most)``."""
        with self._mutex, self.store.transaction(write=False):
            return self.store.document_spread(word)

    def keyword_search(self, query: str, limit: int) -> list[tuple[int, float]]:
        """``(chunk id, keyword score)`` best first, without embedding the query."""
        with self._mutex, self.store.transaction(write=False):
            return self.store.keyword_search(query, limit)

    def setting(self, key: str) -> str | None:
        """A value the index's settings hold for ``key`` (``rt eval --calibrate`` keeps its rule there)."""
        return self.store.meta().get(SETTING_PREFIX + key)

    def set_setting(self, key: str, value: str | None) -> None:
        """Store ``value`` under ``key`` in the index's settings (``None`` removes it)."""
        with self.writing(), self.store.transaction():
            if value is None:
                self.store.delete_meta(SETTING_PREFIX + key)
            else:
                self.store.set_meta(**{SETTING_PREFIX + key: value})

    def close(self) -> None:
        """Close the database (searches after this fail)."""
        self.store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


if TYPE_CHECKING:  # mypy checks that the Index answers the terms API rag uses
    def _answers_terms(index: Index) -> TermStats:
        return index
