"""Keep an index in step with folders as they change (``rt index PATH --watch``).

watchdog reports file events; they are collected until the folders have been quiet for
``WatchOptions.debounce_seconds``, then applied as one incremental pass of
:meth:`Index.add` (unchanged files are recognised by hash). A rename is applied as a rename,
keeping the chunks and vectors. Editor temp and lock files do not trigger passes. A watched
folder that disappears is dropped from the index by the next pass and watched again when it
comes back. Searches keep working meanwhile: every pass commits in SQLite transactions.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.index.config import WatchOptions
from runtime.index.index import Index
from runtime.index.ingest import IndexReport

logger = logging.getLogger(__name__)

# Editor and office temp files: vim (.swp, 4913, trailing ~), emacs (#x#, .#x), LibreOffice
# (.~lock.x#), Microsoft Office (~$x), partial downloads.
_TEMP = re.compile(r"(^\.~lock\..*#$|^~\$|^\.#|^#.*#$|~$|\.(swp|swo|swx|tmp|temp|part|crdownload)$|^4913$)",
                   re.I)


_CHANGES = frozenset({"created", "deleted", "modified", "moved", "closed"})


def is_temp_file(path: str | Path) -> bool:
    """Whether ``path`` names an editor temp or lock file, which a watch ignores."""
    return bool(_TEMP.search(Path(path).name))


@dataclass
class WatchPass:
    """One batch of changes applied: the renames (old, new) and the incremental pass's report."""

    renamed: list[tuple[str, str]] = field(default_factory=list)
    report: IndexReport | None = None


class _Events:
    """Collects watchdog events from its thread: renames in order, and whether anything changed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.renames: list[tuple[str, str]] = []
        self.last = 0.0

    def dispatch(self, event: Any) -> None:
        import time

        if event.event_type not in _CHANGES:  # rt's own reads (opened, closed_no_write) change nothing
            return
        paths = [event.src_path, getattr(event, "dest_path", "") or ""]
        if all(not p or is_temp_file(p) for p in paths):
            return
        with self.lock:
            if event.event_type == "moved" and not is_temp_file(event.src_path) and event.dest_path:
                self.renames.append((str(event.src_path), str(event.dest_path)))
            self.last = time.monotonic()
            self.changed.set()

    def take(self) -> list[tuple[str, str]]:
        with self.lock:
            renames, self.renames = self.renames, []
            self.changed.clear()
            return renames


def _handler(events: _Events) -> Any:
    """A watchdog event handler that hands every event to ``events``."""
    from watchdog.events import FileSystemEventHandler

    class Handler(FileSystemEventHandler):
        def dispatch(self, event: Any) -> None:
            events.dispatch(event)

    return Handler()


def watch(index: Index, paths: Sequence[str | Path], *, include: Sequence[str] = (),
          exclude: Sequence[str] = (), options: WatchOptions = WatchOptions(),
          stop: threading.Event | None = None, on_pass: Callable[[WatchPass], None] | None = None,
          first_pass: bool = True, follow_symlinks: bool = False, progress: bool = False) -> None:
    """Apply changes under ``paths`` to ``index`` until ``stop`` is set (or Ctrl-C).

    ``on_pass`` is called after each batch of changes with what was done. With ``first_pass``
    the folders are indexed once as soon as they are watched: the watch starts before that
    scan, so a file written while it runs, or just after, is seen by the next pass. (Indexing
    first and watching after would miss a file written in between until some later change.)
    ``progress`` shows a progress bar for the first pass.
    """
    import time

    from watchdog.observers import Observer

    roots = [Path(p).expanduser().resolve() for p in paths]
    stop = stop or threading.Event()
    events = _Events()
    observer = Observer()
    watched = _Roots(observer, _handler(events), roots)
    observer.start()
    first = first_pass
    if first_pass:
        events.changed.set()  # applied as soon as the roots are scheduled, below
    try:
        while not stop.is_set():
            if watched.update():
                events.changed.set()  # a folder went or came back
            quiet = time.monotonic() - events.last >= options.debounce_seconds
            if events.changed.is_set() and quiet:
                done = WatchPass()
                for old, new in events.take():
                    if index.rename(old, new):
                        done.renamed.append((old, new))
                existing = [r for r in roots if r.exists()]
                done.report = index.add(existing, include=include, exclude=exclude,
                                        follow_symlinks=follow_symlinks, progress=progress and first)
                first = False
                gone = [r for r in roots if not r.exists()]
                if gone:
                    index.remove(gone)
                if on_pass is not None:
                    on_pass(done)
            stop.wait(options.poll_seconds)
    finally:
        observer.stop()
        with contextlib.suppress(RuntimeError):
            observer.join(timeout=5)


class _Roots:
    """The roots being watched: scheduled when they exist, unscheduled when they disappear."""

    def __init__(self, observer: Any, handler: Any, roots: list[Path]) -> None:
        self.observer, self.handler, self.roots = observer, handler, roots
        self.watches: dict[Path, Any] = {}
        self.missing: set[Path] = set()

    def update(self) -> bool:
        """Watch roots that exist and are not watched; stop watching those that disappeared.
        Return whether a root disappeared or came back."""
        changed = False
        for root in self.roots:
            folder, recursive = (root, True) if root.is_dir() else (root.parent, False)
            if root.exists() and root not in self.watches and folder.is_dir():
                try:
                    self.watches[root] = self.observer.schedule(self.handler, str(folder), recursive=recursive)
                except OSError as exc:
                    logger.info("cannot watch %s yet: %s", folder, exc)
                    continue
                changed = changed or root in self.missing
                self.missing.discard(root)
            elif not root.exists() and root in self.watches:
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self.observer.unschedule(self.watches[root])
                del self.watches[root]
                self.missing.add(root)
                changed = True
        return changed
