"""Server-sent events, as the OpenAI streaming API frames them: ``data: {json}`` lines and a
final ``data: [DONE]``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

DONE = b"data: [DONE]\n\n"
MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(data: dict[str, Any]) -> bytes:
    """One event carrying ``data`` as compact JSON."""
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n\n"


class EventStream(StreamingResponse):
    """A streamed response that notices a client leaving even while no event is being sent.

    Starlette's own ``StreamingResponse`` (ASGI spec 2.4, as uvicorn speaks it) only learns of
    a disconnect from the next failed write and then leaves its iterator open. Here a second
    task waits for ``http.disconnect``; either way the events' iterator is closed, so that the
    generation behind it stops and its queue turn is given back.
    """

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        super().__init__(events, media_type=MEDIA_TYPE, headers=HEADERS)
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        streaming = asyncio.ensure_future(self.stream_response(send))
        watching = asyncio.ensure_future(disconnected())
        try:
            await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, watching):
                task.cancel()
            await asyncio.gather(streaming, watching, return_exceptions=True)
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                await aclose()
