"""Bring an index up to date with folders on disk: scan, hash, read, chunk, embed, commit.

Files are compared by content hash. New and changed files are embedded in batches of about
``IndexOptions.commit_chunks`` chunks, and each batch is one SQLite transaction: a run killed
at any moment keeps every earlier batch, and the next run finds those files unchanged. A
changed file reuses the stored vectors of chunks whose text did not change.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runtime.fsutil import human_bytes
from runtime.index.chunking import Chunk, chunk_section
from runtime.index.config import IndexOptions
from runtime.index.embedder import Embedder
from runtime.index.readers import BinaryFileError, UnreadableFileError, reader_for
from runtime.index.scan import is_under, scan_root
from runtime.index.store import DocumentRecord, Store

logger = logging.getLogger(__name__)


@dataclass
class IndexReport:
    """What a run did. ``problems`` lists files that could not be read, with the reason."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[str, str]] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        """One human line: counts of files and chunks, and why files were skipped."""
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        rate = self.chunks_embedded / self.embed_seconds if self.embed_seconds else 0.0
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged, {skipped} skipped" + (f" ({reasons})" if reasons else "")
            + f"; {self.chunks_embedded} chunks embedded ({rate:.1f}/s), "
            f"{self.chunks_reused} reused, {self.seconds:.1f} s"
        )


@dataclass
class _Pending:
    record: DocumentRecord
    chunks: list[Chunk]
    new: bool
    reuse: dict[str, bytes]


class Ingest:
    """One run of bringing ``store`` up to date with some roots (the caller holds the write lock)."""

    def __init__(self, store: Store, embedder: Callable[[], Embedder], options: IndexOptions,
                 *, progress: bool = False, index_folder: Path | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.options = options
        self.progress = progress
        self.index_folder = index_folder
        self.report = IndexReport()
        self._pending: list[_Pending] = []

    def run(self, roots: Sequence[tuple[Path, Sequence[str], Sequence[str]]]) -> IndexReport:
        """Scan ``(root, include, exclude)`` triples, drop vanished files, embed new and changed ones."""
        started = time.monotonic()
        files: list[Path] = []
        for root, include, exclude in roots:
            scan = scan_root(root, include, exclude, skip_under=self.index_folder)
            files += scan.files
            self.report.skipped.update(scan.skipped)
        files = list(dict.fromkeys(files))
        known = self.store.documents()
        seen = {str(f) for f in files}
        vanished = [p for p in known if p not in seen and any(is_under(p, r) for r, _, _ in roots)]
        with self.store.transaction():
            for root, include, exclude in roots:
                self.store.set_root(str(root), "\n".join(include), "\n".join(exclude))
            if vanished:
                self.store.delete_documents(vanished)
                self.store.bump_generation()
        self.report.removed = sorted(vanished)
        self._ingest_files(files, known)
        self.report.seconds = time.monotonic() - started
        return self.report

    def _ingest_files(self, files: list[Path], known: dict[str, tuple[int, str]]) -> None:
        from tqdm import tqdm

        bar = tqdm(total=len(files), unit="file", desc="indexing", disable=not self.progress,
                   dynamic_ncols=True, leave=False)
        try:
            for path in files:
                self._consider(path, known)
                bar.update(1)
                if sum(len(p.chunks) for p in self._pending) >= self.options.commit_chunks:
                    self._flush()
                bar.set_postfix(chunks=self.report.chunks_embedded, refresh=False)
            self._flush()
        finally:
            bar.close()

    def _consider(self, path: Path, known: dict[str, tuple[int, str]]) -> None:
        key = str(path)
        try:
            stat = path.stat()
            if stat.st_size > self.options.max_file_bytes:
                self.report.skipped["too large"] += 1
                logger.info("skipping %s: %s", key, human_bytes(stat.st_size))
                return
            data = path.read_bytes()
        except OSError as exc:
            self._problem(key, f"cannot read: {exc.strerror or exc}")
            return
        sha = hashlib.sha256(data).hexdigest()
        previous = known.get(key)
        if previous is not None and previous[1] == sha:
            self.report.unchanged += 1
            return
        try:
            document = reader_for(path)(data)
        except BinaryFileError:
            self.report.skipped["binary"] += 1
            return
        except UnreadableFileError as exc:
            self._problem(key, str(exc))
            return
        chunks = self._chunk(document.sections)
        if not chunks:
            self.report.skipped["empty"] += 1
        record = DocumentRecord(key, sha, stat.st_size, stat.st_mtime, document.kind, document.encoding)
        reuse = self.store.old_vectors(previous[0]) if previous else {}
        self._pending.append(_Pending(record, chunks, previous is None, reuse))

    def _chunk(self, sections: Sequence) -> list[Chunk]:
        chunks: list[Chunk] = []
        for section in sections:
            if section.text.strip():
                embedder = self.embedder()
                budget = min(self.options.chunk_tokens, embedder.max_tokens - 2)
                overlap = min(self.options.overlap_tokens, budget // 2 - 1)
                chunks += chunk_section(section, embedder.token_offsets, budget, overlap)
        return chunks

    def _problem(self, path: str, why: str) -> None:
        self.report.problems.append((path, why))
        self.report.skipped["unreadable"] += 1
        logger.info("skipped %s: %s", path, why)

    def _flush(self) -> None:
        """Embed the pending files' new chunks and commit them in one transaction."""
        if not self._pending:
            return
        todo = [c.text for p in self._pending for c in p.chunks if c.text not in p.reuse]
        todo = list(dict.fromkeys(todo))
        started = time.monotonic()
        vectors = self.embedder().embed(todo) if todo else None
        self.report.embed_seconds += time.monotonic() - started
        fresh = {text: vectors[i].tobytes() for i, text in enumerate(todo)} if vectors is not None else {}
        now = time.time()
        with self.store.transaction():
            for pending in self._pending:
                blobs = [pending.reuse.get(c.text) or fresh[c.text] for c in pending.chunks]
                self.store.put_document(pending.record, pending.chunks, blobs, now)
            self.store.bump_generation()
        for pending in (p for p in self._pending if p.chunks):  # empty files count as skipped
            (self.report.added if pending.new else self.report.updated).append(pending.record.path)
            self.report.chunks_reused += sum(1 for c in pending.chunks if c.text in pending.reuse)
        self.report.chunks_embedded += len(todo)
        self._pending = []
