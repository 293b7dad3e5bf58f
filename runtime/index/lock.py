"""A cross-process write lock on an index folder, held through ``filelock``.

``filelock`` locks with ``flock`` on POSIX and ``msvcrt.locking`` on Windows, so the operating
system drops the lock when the holder dies, kill -9 included: a crashed ``rt index`` never leaves
a stale lock behind. The holder writes its pid into a file beside the lock (``index.lock.pid``)
only to make the next writer's message useful; the lock file itself belongs to ``filelock``
(some of its versions truncate it when they open it, and Windows refuses reads of a locked byte).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from runtime.errors import IndexLockedError

if TYPE_CHECKING:
    from filelock import BaseFileLock

logger = logging.getLogger(__name__)


class WriteLock:
    """Exclusive writer lock on ``path``; ``wait`` seconds to wait for another writer (0: fail at once)."""

    def __init__(self, path: Path, *, wait: float = 0.0) -> None:
        self.path = Path(path)
        self.wait = wait
        self._lock: BaseFileLock | None = None

    @property
    def pid_path(self) -> Path:
        """The file where the holder records its pid (for the next writer's message only)."""
        return self.path.with_name(self.path.name + ".pid")

    def acquire(self) -> None:
        """Take the lock or raise :class:`IndexLockedError` once ``wait`` seconds have passed."""
        from filelock import FileLock, Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        # thread_local=False: the lock belongs to this object, whichever thread releases it.
        lock = FileLock(self.path, timeout=max(self.wait, 0.0), thread_local=False)
        try:
            lock.acquire(poll_interval=0.2)
        except Timeout:
            holder = _holder_pid(self.pid_path)
            who = f"process {holder}" if holder else "another process"
            raise IndexLockedError(
                f"the index at {self.path.parent} is being written by {who}",
                hint="wait for it to finish, or pass --wait SECONDS to queue behind it",
            ) from None
        self._lock = lock
        self._write_pid()

    def _write_pid(self) -> None:
        try:  # the pid only makes the next writer's message useful: the lock is held without it
            fh = open(self.pid_path, "wb")  # noqa: SIM115 - closed below, also when writing fails
            try:
                fh.write(str(os.getpid()).encode())
            finally:
                fh.close()
        except OSError as exc:
            logger.debug("could not write the pid into %s: %s", self.pid_path, exc)

    def release(self) -> None:
        """Release the lock (a no-op when not held)."""
        if self._lock is None:
            return
        with contextlib.suppress(OSError):  # before unlocking: the next holder writes its own
            self.pid_path.unlink(missing_ok=True)
        self._lock.release()
        self._lock = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _holder_pid(path: Path) -> int | None:
    """The pid recorded by the lock's holder, if that process is alive (a holder killed with
    kill -9 leaves its pid file behind until the next writer replaces it)."""
    try:
        text = path.read_bytes()[:32].decode("ascii", "ignore").strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    import psutil

    return int(text) if psutil.pid_exists(int(text)) else None
