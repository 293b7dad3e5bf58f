"""One generation at a time, in arrival order, with a bounded number waiting.

A CPU runs one generation at full speed; two at once only split it. :class:`GenerationQueue`
admits requests first come, first served (``asyncio.Lock`` wakes its waiters in FIFO order) and
refuses a request at once, with :class:`QueueFull`, when ``max_waiting`` are already waiting:
the server answers 429 with a ``Retry-After`` instead of letting clients hang.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class QueueFull(Exception):
    """``waiting`` requests are already queued behind the one running."""

    def __init__(self, waiting: int) -> None:
        super().__init__(f"{waiting} requests are already waiting for the model")
        self.waiting = waiting


class GenerationQueue:
    """The model's turn, taken in arrival order; at most ``max_waiting`` wait for it."""

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self.waiting = 0
        self.running = 0
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for the model (raises :class:`QueueFull` at once when the queue is full)."""
        if self._lock.locked() and self.waiting >= self.max_waiting:
            raise QueueFull(self.waiting)
        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._lock.release()
