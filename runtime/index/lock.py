"""A cross-process write lock on an index folder (fcntl on POSIX, msvcrt on Windows).

The operating system drops the lock when the holder dies, kill -9 included, so a crashed
``rt index`` never leaves a stale lock behind. The holder's pid is written into the file
only to make the message of the next writer useful.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from runtime.errors import IndexLockedError

logger = logging.getLogger(__name__)

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    _LOCK_OFFSET = 1 << 20  # lock a byte past the pid so other processes can still read it

    def _try_lock(fh: IO[bytes]) -> bool:
        fh.seek(_LOCK_OFFSET)
        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fh: IO[bytes]) -> None:
        fh.seek(_LOCK_OFFSET)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fh: IO[bytes]) -> bool:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def _unlock(fh: IO[bytes]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class WriteLock:
    """Exclusive writer lock on ``path``; ``wait`` seconds to wait for another writer (0: fail at once)."""

    def __init__(self, path: Path, *, wait: float = 0.0) -> None:
        self.path = Path(path)
        self.wait = wait
        self._fh: IO[bytes] | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`IndexLockedError` once ``wait`` seconds have passed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+b")  # noqa: SIM115 - held open for the lock's lifetime
        deadline = time.monotonic() + self.wait
        while not _try_lock(fh):
            if time.monotonic() >= deadline:
                holder = _read_pid(self.path)
                fh.close()
                who = f"process {holder}" if holder else "another process"
                raise IndexLockedError(
                    f"the index at {self.path.parent} is being written by {who}",
                    hint="wait for it to finish, or pass --wait SECONDS to queue behind it",
                )
            time.sleep(0.2)
        self._fh = fh
        try:  # the pid only makes the next writer's message useful: the lock is held without it
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()).encode())
            fh.flush()
        except OSError as exc:
            logger.debug("could not write the pid into %s: %s", self.path, exc)

    def release(self) -> None:
        """Release the lock (a no-op when not held)."""
        if self._fh is None:
            return
        with contextlib.suppress(OSError):
            _unlock(self._fh)
        self._fh.close()
        self._fh = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_bytes()[:32].decode("ascii", "ignore").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
