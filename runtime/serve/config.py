"""Defaults of ``rt serve``, once: the CLI reads its option defaults from :class:`ServeOptions`."""

from __future__ import annotations

from dataclasses import dataclass

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class ServeOptions:
    """How the HTTP server listens and how much it accepts.

    ``max_queue`` is how many generation requests may wait behind the one running; one more
    is answered 429 with a ``Retry-After`` instead of waiting without bound. ``max_body`` caps
    a request body in bytes (a long RAG chat fits easily in 1 MiB). ``max_embedding_inputs``
    caps the texts of one ``/v1/embeddings`` call. ``retry_after`` is the seconds a client told
    to come back waits at least. ``allowed_hosts`` are names besides the bound address that
    ``Host`` and ``Origin`` may carry (``*``: any); ``insecure`` lets a non-loopback address
    listen without an API key. ``drain_seconds`` is how long a shutdown lets running requests
    go on before it ends them (a stream with an error event), within ``GRACEFUL_SECONDS``.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str | None = None
    max_queue: int = 16
    max_body: int = 1 << 20
    max_embedding_inputs: int = 256
    max_rag_k: int = 50
    retry_after: int = 2
    allowed_hosts: tuple[str, ...] = ()
    insecure: bool = False
    drain_seconds: float = 2.0

    @property
    def loopback(self) -> bool:
        """True when only this machine can connect."""
        return self.host.strip("[]").lower() in LOOPBACK_HOSTS or self.host.startswith("127.")

    @property
    def wildcard(self) -> bool:
        """True when listening on every interface (0.0.0.0 or ::)."""
        return self.host.strip("[]") in WILDCARD_HOSTS
