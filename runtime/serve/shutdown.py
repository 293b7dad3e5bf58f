"""How a shutdown signal reaches the requests ``rt serve`` is running.

uvicorn, on SIGINT or SIGTERM, stops accepting connections and waits for the running requests,
then cancels them: a cancelled stream ends without its last chunk (the client sees a truncated
chunked body) and uvicorn logs the cancellation as a traceback. Instead, ``drain_seconds``
after the signal, :attr:`Shutdown.ending` is set: a stream then stops its generation and ends
with an error event and ``data: [DONE]``, a request not yet answered gets a 503, and uvicorn
finds nothing left to cancel.
"""

from __future__ import annotations

import asyncio

from runtime.serve.schemas import BadRequest


class Shutdown:
    """Set :attr:`ending` ``drain_seconds`` after :meth:`begin` (called from a signal handler)."""

    # After ``ending``, how long a request waits for its generation to stop (between two
    # tokens) before it answers anyway; a model still busy then (inside a long prompt, which it
    # reads without looking for "cancel") is ended by ModelHost.close.
    stop_seconds = 1.0

    def __init__(self, drain_seconds: float) -> None:
        self.drain_seconds = drain_seconds
        self.ending = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop serving the requests (known once the server has started)."""
        self._loop = loop

    def begin(self) -> None:
        """A shutdown signal came; safe to call from a signal handler or another thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(loop.call_later, self.drain_seconds, self.ending.set)

    @staticmethod
    def error() -> BadRequest:
        """What a request still running when the server stops is answered."""
        return BadRequest("the server is shutting down; the generation was stopped. Send the request "
                          "again once it is back", status=503, code="server_shutting_down",
                          error_type="server_error")
