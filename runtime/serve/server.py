"""Run the application with uvicorn until SIGINT or SIGTERM, then shut down gracefully.

uvicorn stops accepting connections on either signal, lets the requests in flight finish for
up to ``GRACEFUL_SECONDS`` (a stream still running then is cancelled, which stops its
generation), and ends the application's lifespan, which frees the model and closes the indexes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import uvicorn

from runtime.serve.app import create_app
from runtime.serve.config import ServeOptions
from runtime.serve.host import ModelHost

logger = logging.getLogger(__name__)

GRACEFUL_SECONDS = 5


class _Server(uvicorn.Server):
    """uvicorn's server, except that a shutdown signal ends ``rt serve`` with status 0.

    uvicorn raises the signal again once its graceful shutdown is over, so the process would
    die of it (status -15 for SIGTERM); by then rt has closed the model and the indexes.
    """

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        await super().startup(sockets)
        if self.started and self._on_ready is not None:
            self._on_ready()

    def handle_exit(self, sig: int, frame: object) -> None:
        super().handle_exit(sig, frame)  # type: ignore[arg-type]
        logger.info("signal %d: shutting down gracefully", sig)
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()


def run_server(host: ModelHost, options: ServeOptions, *, on_ready: Callable[[], None] | None = None) -> None:
    """Serve ``host`` on ``options.host:options.port`` until a shutdown signal."""
    config = uvicorn.Config(
        create_app(host, options), host=options.host, port=options.port, log_level="warning",
        access_log=False, timeout_graceful_shutdown=GRACEFUL_SECONDS, lifespan="on",
    )
    _Server(config, on_ready).run()
