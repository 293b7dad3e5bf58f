"""Run the application with uvicorn until SIGINT or SIGTERM, then shut down gracefully.

uvicorn stops accepting connections on either signal; the requests in flight may finish for
``ServeOptions.drain_seconds``, then the application ends them itself (a stream with an error
event, :mod:`runtime.serve.shutdown`), and the application's lifespan ends, which stops the
model process and closes the indexes: all within ``GRACEFUL_SECONDS``. uvicorn's own deadline,
which cancels what is still running, is only a backstop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import uvicorn

from runtime.serve.app import create_app
from runtime.serve.config import ServeOptions
from runtime.serve.host import ModelHost
from runtime.serve.shutdown import Shutdown

logger = logging.getLogger(__name__)

GRACEFUL_SECONDS = 5


class _Server(uvicorn.Server):
    """uvicorn's server, except that a shutdown signal ends ``rt serve`` with status 0.

    uvicorn raises the signal again once its graceful shutdown is over, so the process would
    die of it (status -15 for SIGTERM); by then rt has closed the model and the indexes.
    """

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown, on_ready: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._shutdown = shutdown
        self._on_ready = on_ready

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        self._shutdown.bind(asyncio.get_running_loop())
        await super().startup(sockets)
        if self.started and self._on_ready is not None:
            self._on_ready()

    def handle_exit(self, sig: int, frame: object) -> None:
        super().handle_exit(sig, frame)  # type: ignore[arg-type]
        self._shutdown.begin()
        logger.info("signal %d: shutting down gracefully", sig)
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()


def run_server(host: ModelHost, options: ServeOptions, *, on_ready: Callable[[], None] | None = None) -> None:
    """Serve ``host`` on ``options.host:options.port`` until a shutdown signal."""
    app = create_app(host, options)
    config = uvicorn.Config(
        app, host=options.host, port=options.port, log_level="warning", access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS - 1, lifespan="on",  # 1 s left to stop the model
    )
    _Server(config, app.state.shutdown, on_ready).run()
