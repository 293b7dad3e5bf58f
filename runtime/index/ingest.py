"""Bring an index up to date with folders on disk: scan, hash, read, chunk, embed, commit.

Files are compared by content hash. New and changed files are embedded in batches of about
``IndexOptions.commit_chunks`` chunks, and each batch is one SQLite transaction: a run killed
at any moment keeps every earlier batch, and the next run finds those files unchanged. A
changed file reuses the stored vectors of chunks whose text did not change.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat as stat_module
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from runtime.fsutil import human_bytes
from runtime.index.chunking import Chunk, chunk_section
from runtime.index.config import IndexOptions
from runtime.index.embedders.base import Embedder
from runtime.index.readers import BinaryFileError, Section, UnreadableFileError, fingerprint, reader_for
from runtime.index.scan import NAMED_REASONS, NAMES_KEPT, is_under, path_key, scan_root, shown
from runtime.index.store import text_digest
from runtime.index.stores.base import DocumentRecord, IndexStore

logger = logging.getLogger(__name__)
RECENT_VECTORS = 2048  # about 3 MB of MiniLM vectors


@dataclass
class IndexReport:
    """What a run did. ``problems`` lists files (and folders) that could not be read, with the
    reason; ``empty`` names the files in which no text was found (an image-only PDF, say);
    ``skipped_files`` names the first files skipped for each reason worth naming (too large,
    binary, not a regular file, symlink), ``skipped`` counts them all."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_files: dict[str, list[str]] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    pages_without_text: dict[str, int] = field(default_factory=dict)  # PDF path -> pages not OCR'd
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
            f"{self.chunks_reused} reused, {self.seconds:.1f} s" + self._no_text() + self._scans()
            + self._skipped_names()
        )

    def skip(self, reason: str, path: str | None = None) -> None:
        """Count a file skipped for ``reason``; ``path`` (as shown) is kept among the first
        ``NAMES_KEPT`` of a reason worth naming."""
        self.skipped[reason] += 1
        if path is not None and reason in NAMED_REASONS:
            kept = self.skipped_files.setdefault(reason, [])
            if len(kept) < NAMES_KEPT:
                kept.append(path)

    def _skipped_names(self, shown_names: int = 5) -> str:
        parts = []
        for reason, paths in sorted(self.skipped_files.items()):
            more = self.skipped[reason] - min(len(paths), shown_names)
            names = ", ".join(Path(p).name for p in paths[:shown_names])
            parts.append(f"{reason}: {names}" + (f" and {more} more" if more > 0 else ""))
        return "; " + "; ".join(parts) if parts else ""

    def _scans(self) -> str:
        if not self.pages_without_text:
            return ""
        from runtime.index.formats.ocr import OCR_HINT

        pages = sum(self.pages_without_text.values())
        names = ", ".join(Path(p).name for p in list(self.pages_without_text)[:3])
        more = f" and {len(self.pages_without_text) - 3} more" if len(self.pages_without_text) > 3 else ""
        return f"; {pages} PDF page(s) without a text layer in {names}{more} ({OCR_HINT})"

    def _no_text(self) -> str:
        if not self.empty:
            return ""
        names = ", ".join(Path(p).name for p in self.empty[:5])
        more = f" and {len(self.empty) - 5} more" if len(self.empty) > 5 else ""
        return f"; no text found in {names}{more}"


@dataclass
class _File:
    """A file being written: its record, the old version's chunks to reuse, its rows so far."""

    record: DocumentRecord
    previous: int | None
    reuse: dict[bytes, int]
    document_id: int | None = None
    n_chunks: int = 0
    done: bool = False


class Ingest:
    """One run of bringing ``store`` up to date with some roots (the caller holds the write lock).

    Memory is bounded on any one file: it is hashed and decoded in blocks, read as sections of
    at most ``IndexOptions.section_chars`` characters, and its chunks are embedded and written
    ``commit_chunks`` at a time. A transaction commits at the first file boundary after
    ``commit_chunks`` chunks, so a file larger than that is still committed whole or not at all.
    """

    def __init__(self, store: IndexStore, embedder: Callable[[], Embedder], options: IndexOptions,
                 *, progress: bool = False, index_folder: Path | None = None,
                 follow_symlinks: bool = False) -> None:
        self.follow_symlinks = follow_symlinks
        self.store = store
        self.embedder = embedder
        self.options = options
        self.progress = progress
        self.index_folder = index_folder
        self.report = IndexReport()
        self._buffer: list[tuple[_File, Chunk]] = []
        self._open: list[_File] = []  # files with rows in the open transaction
        self._transaction: contextlib.ExitStack | None = None
        self._written = 0
        self._recent: OrderedDict[bytes, bytes] = OrderedDict()
        self._bar: Any = None
        self._where = ""

    def run(self, roots: Sequence[tuple[Path, Sequence[str], Sequence[str]]]) -> IndexReport:
        """Scan ``(root, include, exclude)`` triples, drop vanished files, embed new and changed ones."""
        started = time.monotonic()
        files: list[Path] = []
        for root, include, exclude in roots:
            scan = scan_root(root, include, exclude, skip_under=self.index_folder,
                             follow_symlinks=self.follow_symlinks)
            files += scan.files
            self.report.skipped.update(scan.skipped)
            for reason, names in scan.skipped_files.names.items():
                kept = self.report.skipped_files.setdefault(reason, [])
                kept += names[:max(0, NAMES_KEPT - len(kept))]
            self.report.problems += scan.problems
        files = list(dict.fromkeys(files))
        known = self.store.documents()
        seen = {path_key(f) for f in files}
        keys = [path_key(r) for r, _, _ in roots]
        vanished = [p for p in known if p not in seen and any(is_under(p, r) for r in keys)]
        if vanished:  # a file moved since the last run comes back under its new name unembedded
            for text, blob in self.store.texts_and_vectors([known[p][0] for p in vanished], RECENT_VECTORS):
                self._remember(text, blob)
        with self.store.transaction():
            for key, (_, include, exclude) in zip(keys, roots):
                self.store.set_root(key, "\n".join(include), "\n".join(exclude))
            if vanished:
                self.store.delete_documents(vanished)
                self.store.bump_generation()
        self.report.removed = sorted(shown(k) for k in vanished)
        try:
            self._ingest_files(files, known)
        except BaseException:
            self._end_transaction(*sys.exc_info())
            raise
        self.report.seconds = time.monotonic() - started
        return self.report

    def _ingest_files(self, files: list[Path], known: dict[str, tuple[int, str]]) -> None:
        from tqdm import tqdm

        total = sum(_size(f) for f in files)
        self._bar = tqdm(total=total, unit="B", unit_scale=True, desc="indexing", dynamic_ncols=True,
                         disable=not self.progress, leave=False)
        try:
            for number, path in enumerate(files, start=1):
                self._where = f"file {number}/{len(files)}"
                self._bar.set_postfix_str(f"{self._where}, {self.report.chunks_embedded} chunks", refresh=False)
                before = self._bar.n
                self._consider(path, known)
                self._bar.update(max(0, before + _size(path) - self._bar.n))
                if self._written + len(self._buffer) >= self.options.commit_chunks:
                    self._commit()
            self._commit()
        except BaseException:
            self._bar.leave = True  # the error starts on a line of its own, after where it stopped
            raise
        finally:
            self._bar.close()

    def _consider(self, path: Path, known: dict[str, tuple[int, str]]) -> None:
        key = path_key(path)
        try:
            handle = _open_regular(path, follow=self.follow_symlinks)
        except _SymlinkError:  # replaced by a link since the scan
            self.report.skip("symlink", shown(key))
            return
        except OSError as exc:
            self._problem(shown(key), f"cannot read: {exc.strerror or exc}")
            return
        if handle is None:
            self.report.skip("not a regular file", shown(key))
            return
        with handle:
            try:
                stat = os.fstat(handle.fileno())
                if stat.st_size > self.options.max_file_bytes:
                    self.report.skip("too large", shown(key))
                    logger.info("skipping %s: %s", shown(key), human_bytes(stat.st_size))
                    return
                facts = fingerprint(handle, self.options.read_block_bytes)
            except OSError as exc:
                self._problem(shown(key), f"cannot read: {exc.strerror or exc}")
                return
            previous = known.get(key)
            if previous is not None and previous[1] == facts.sha256:
                self.report.unchanged += 1
                return
            try:
                reader = reader_for(path)
            except BinaryFileError:
                self.report.skip("binary", shown(key))
                return
            if reader.text and facts.encoding is None:
                if facts.binary:
                    self.report.skip("binary", shown(key))
                else:
                    self._problem(shown(key), facts.problem or "not text")
                return
            record = DocumentRecord(key, facts.sha256, facts.size, stat.st_mtime, reader.kind,
                                    facts.encoding if reader.text else None)
            file = _File(record, previous[0] if previous else None,
                         self.store.old_chunk_ids(previous[0]) if previous else {})
            try:
                handle.seek(0)
                self._read(file, reader.read(handle, facts.encoding, self.options.section_chars), handle)
            except (UnreadableFileError, OSError) as exc:
                self._abandon(file)
                why = str(exc) if isinstance(exc, UnreadableFileError) else f"cannot read: {exc.strerror or exc}"
                self._problem(shown(key), why)
                return
        file.done = True
        if file.n_chunks == 0 and not any(f is file for f, _ in self._buffer):
            self._start(file)  # an empty file is recorded too, so that it counts as unchanged next time

    def _read(self, file: _File, sections: Iterator[Section], handle: BinaryIO) -> None:
        """Chunk ``sections`` as they come, embedding and writing every ``commit_chunks``."""
        start = self._bar.n
        for section in sections:
            if section.no_text:
                path = shown(file.record.path)
                self.report.pages_without_text[path] = self.report.pages_without_text.get(path, 0) + 1
            if section.text.strip():
                for chunk in self._chunk(section):
                    self._buffer.append((file, chunk))
            if len(self._buffer) >= self.options.commit_chunks:
                self._write_buffer()
            with contextlib.suppress(OSError, ValueError):
                self._bar.update(max(0, start + handle.tell() - self._bar.n))
            self._bar.set_postfix_str(f"{self._where}, {self.report.chunks_embedded} chunks", refresh=False)

    def _chunk(self, section: Section) -> list[Chunk]:
        embedder = self.embedder()
        budget = min(self.options.chunk_tokens, embedder.max_tokens - 2)
        overlap = min(self.options.overlap_tokens, budget // 2 - 1)
        return chunk_section(section, embedder.token_offsets, budget, overlap,
                             wrapped_sentences=self.options.chunker >= 2)

    def _problem(self, path: str, why: str) -> None:
        self.report.problems.append((path, why))
        self.report.skipped["unreadable"] += 1
        logger.info("skipped %s: %s", path, why)

    # --- writing -----------------------------------------------------------------------------
    def _begin(self) -> None:
        if self._transaction is None:
            stack = contextlib.ExitStack()
            stack.enter_context(self.store.transaction())
            self._transaction = stack

    def _end_transaction(self, *exc_info: Any) -> None:
        """Commit (no exception) or roll back the open transaction; a full disk becomes
        :class:`InsufficientDiskError` here."""
        stack, self._transaction = self._transaction, None
        self._buffer, self._open, self._written = [], [], 0
        if stack is not None:
            stack.__exit__(*exc_info)

    def _start(self, file: _File) -> int:
        """The document row of ``file``, inserted on first use under a temporary name."""
        if file.document_id is None:
            self._begin()
            path = file.record.path if file.previous is None else file.record.path + "\x00new"
            file.document_id = self.store.begin_document(file.record, path, time.time())
            self._open.append(file)
        return file.document_id

    def _write_buffer(self) -> None:
        """Embed the buffered chunks (reusing unchanged ones) and insert them."""
        if not self._buffer:
            return
        self.embedder()  # loaded (and its dimension recorded) before the transaction opens
        reused: dict[Chunk, bytes] = {}
        wanted = {f.reuse[d]: c for f, c in self._buffer if (d := text_digest(c.text)) in f.reuse}
        blobs = self.store.vector_blobs(list(wanted)) if wanted else {}
        for chunk_id, chunk in wanted.items():
            if chunk_id in blobs:
                reused[chunk] = blobs[chunk_id]
        fresh: dict[str, bytes] = {}
        for _, chunk in self._buffer:
            if chunk not in reused and (blob := self._recent.get(text_digest(chunk.text))) is not None:
                fresh[chunk.text] = blob
        todo = list(dict.fromkeys(c.text for _, c in self._buffer if c not in reused and c.text not in fresh))
        started = time.monotonic()
        vectors = self.embedder().embed(todo) if todo else None
        self.report.embed_seconds += time.monotonic() - started
        for i, text in enumerate(todo):
            fresh[text] = self._remember(text, vectors[i].tobytes()) if vectors is not None else b""
        self._begin()
        for file, chunk in self._buffer:
            document_id = self._start(file)
            self.store.add_chunk(document_id, file.n_chunks, chunk, reused.get(chunk) or fresh[chunk.text])
            file.n_chunks += 1
        self.report.chunks_embedded += len(todo)
        self.report.chunks_reused += len(reused)
        self._written += len(self._buffer)
        self._buffer = []

    def _remember(self, text: str, blob: bytes) -> bytes:
        """Keep the vectors of the last ``RECENT_VECTORS`` texts embedded: boilerplate repeated
        across files or within a long one is embedded once."""
        self._recent[text_digest(text)] = blob
        if len(self._recent) > RECENT_VECTORS:
            self._recent.popitem(last=False)
        return blob

    def _abandon(self, file: _File) -> None:
        """Forget the chunks of a file that failed half-way; its older version stays."""
        self._buffer = [(f, c) for f, c in self._buffer if f is not file]
        if file.document_id is not None:
            self.store.discard_document(file.document_id)
            self._open = [f for f in self._open if f is not file]

    def _commit(self) -> None:
        """Write what is buffered, give every finished file its final name, and commit."""
        self._write_buffer()
        if self._transaction is None:
            return
        for file in self._open:
            self.store.finish_document(file.document_id or 0, file.record.path, file.n_chunks)
        self.store.bump_generation()
        done = self._open
        self._end_transaction(None, None, None)
        for file in done:
            if file.n_chunks == 0:
                self.report.skipped["empty"] += 1
                self.report.empty.append(shown(file.record.path))
            else:
                (self.report.added if file.previous is None else self.report.updated).append(shown(file.record.path))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class _SymlinkError(OSError):
    """The file became a symbolic link after the scan (and links are not followed)."""


def _open_regular(path: Path, *, follow: bool = False) -> BinaryIO | None:
    """``path`` opened for reading, or ``None`` if it is not a regular file (a FIFO that replaced
    a file since the scan would block a plain ``open`` forever)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)  # POSIX only; Windows relies on the scan's check
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise _SymlinkError(exc.errno, exc.strerror, str(path)) from exc
        raise
    if not stat_module.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")
