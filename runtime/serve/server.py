"""Run the application with uvicorn until SIGINT or SIGTERM, then shut down gracefully.

uvicorn stops accepting connections on either signal, lets the requests in flight finish for
up to ``GRACEFUL_SECONDS`` (a stream still running then is cancelled, which stops its
generation), and ends the application's lifespan, which frees the model and closes the indexes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from runtime.serve.app import create_app
from runtime.serve.config import ServeOptions
from runtime.serve.host import ModelHost

logger = logging.getLogger(__name__)

GRACEFUL_SECONDS = 5


def run_server(host: ModelHost, options: ServeOptions, *, on_ready: Callable[[], None] | None = None) -> None:
    """Serve ``host`` on ``options.host:options.port`` until a shutdown signal."""
    import uvicorn

    config = uvicorn.Config(
        create_app(host, options), host=options.host, port=options.port, log_level="warning",
        access_log=False, timeout_graceful_shutdown=GRACEFUL_SECONDS, lifespan="on",
    )
    server = uvicorn.Server(config)
    if on_ready is not None:
        _call_when_started(server, on_ready)
    server.run()


def _call_when_started(server: object, on_ready: Callable[[], None]) -> None:
    """Call ``on_ready`` once uvicorn listens (its ``startup`` hook, wrapped)."""
    startup = server.startup  # type: ignore[attr-defined]

    async def started(*args: object, **kwargs: object) -> None:
        await startup(*args, **kwargs)
        if getattr(server, "started", False):
            on_ready()

    server.startup = started  # type: ignore[attr-defined]
