"""Read a child's pipe on a helper thread, so the main thread waits where Ctrl-C reaches it.

On Windows a blocking read of a pipe is not interrupted by Ctrl-C: Python runs its SIGINT
handler only once the read returns, which during a model load or a long prompt is minutes
later. :class:`PipeReader` moves the blocking read onto a daemon thread that fills a queue, and
:meth:`PipeReader.get` waits on that queue in short slices, between which Python delivers a
pending ``KeyboardInterrupt`` (a timed lock wait is not interruptible on Windows either, hence
the slices). POSIX imitates the Windows behaviour with ``signal.siginterrupt(SIGINT, False)``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# How long one wait lasts; the delay between Ctrl-C and KeyboardInterrupt is at most this.
WAIT_SLICE_SECONDS = 0.1


class _End:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class PipeReader(Generic[T]):
    """Calls ``read_one`` on a daemon thread until it raises, queueing what it returns.

    ``EOFError`` or ``OSError`` from ``read_one`` mean the pipe closed: :meth:`get` then raises
    ``EOFError``. Any other exception is raised again by :meth:`get`, in the caller's thread.
    """

    def __init__(self, read_one: Callable[[], T], name: str = "rt-pipe-reader") -> None:
        self._read_one = read_one
        self._queue: queue.Queue[T | _End] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                self._queue.put(self._read_one())
        except (EOFError, OSError, ValueError):  # ValueError: the pipe object was closed under us
            self._queue.put(_End(None))
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._queue.put(_End(exc))

    def get(self) -> T:
        """The next item; waits in slices that let Ctrl-C through. ``EOFError`` once the pipe closed."""
        while True:
            try:
                item = self._queue.get(timeout=WAIT_SLICE_SECONDS)
            except queue.Empty:
                continue
            if isinstance(item, _End):
                self._queue.put(item)  # every later get() ends the same way
                if item.error is not None:
                    raise item.error
                raise EOFError("the other side closed the pipe")
            return item

    def join(self, timeout: float) -> None:
        """Wait (up to ``timeout`` seconds) for the reading thread to see the pipe's end."""
        self._thread.join(timeout)
