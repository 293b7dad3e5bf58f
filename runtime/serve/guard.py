"""What ``rt serve`` refuses before any work: a foreign ``Host``, a foreign ``Origin``, a body
that is not JSON.

A web page the user visits may send requests to ``http://127.0.0.1:8080`` (blind, as simple
"text/plain" POSTs) or, through a DNS name that it rebinds to 127.0.0.1, read the answers as
its own origin, indexed documents included. A rebinding page's requests carry its own name in
``Host``; a cross-site page's carry its origin in ``Origin``; a simple cross-site POST cannot
say ``Content-Type: application/json`` without a CORS preflight, which this server never
approves (it sends no CORS headers at all). So: ``Host`` must name the bound address (or an
``--allowed-host``), an ``Origin`` must too, and JSON endpoints take only JSON (415 otherwise).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.serve.config import LOOPBACK_HOSTS, WILDCARD_HOSTS

logger = logging.getLogger(__name__)

ANY_HOST = "*"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _bracketed(host: str) -> str:
    """``host`` as it appears in a Host header (an IPv6 address in brackets)."""
    host = host.strip().lower()
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def _split(host: str) -> tuple[str, int | None] | None:
    """``name[:port]`` as (name, port); None when it is not one (``[evil``, ``a:b:c``, ``x:port``)."""
    try:
        parts = urlsplit(f"//{host}")
        return (parts.hostname or ""), parts.port
    except ValueError:
        return None


def allowed_hosts(bind: str, port: int, extra: Iterable[str] = ()) -> frozenset[str] | None:
    """The ``Host`` values a server bound to ``bind:port`` accepts (None: any, ``*`` in ``extra``).

    The loopback names and the bind address, each with and without the port, and every name
    of ``extra`` (with and without the port, unless it gives one). Bound to every interface
    (0.0.0.0, ::), the machine's own host name is added too; IP literals are checked apart
    (:func:`host_allowed`), since a DNS rebinding always goes through a name.
    """
    extra = [name.strip().lower() for name in extra if name.strip()]
    if ANY_HOST in extra:
        return None
    names = {*LOOPBACK_HOSTS, bind}
    if bind.strip().lower() in WILDCARD_HOSTS:
        names.add(socket.gethostname())
    allowed: set[str] = set()
    for name in names:
        host = _bracketed(name)
        allowed |= {host, f"{host}:{port}"}
    for name in extra:
        split = _split(name)
        if split is not None and split[1] is not None:
            allowed.add(name)
        else:
            host = _bracketed(name)
            allowed |= {host, f"{host}:{port}"}
    return frozenset(allowed)


def _ip_literal(host: str) -> bool:
    split = _split(host)
    if split is None:
        return False
    try:
        ipaddress.ip_address(split[0])
    except ValueError:
        return False
    return True


def host_allowed(host: str, allowed: frozenset[str] | None, *, wildcard: bool) -> bool:
    """Whether a ``Host`` value (``name[:port]``) may be served."""
    if allowed is None:
        return True
    host = host.strip().lower()
    return host in allowed or (wildcard and _ip_literal(host))


def origin_allowed(origin: str, allowed: frozenset[str] | None, *, wildcard: bool) -> bool:
    """Whether a browser page of ``origin`` (``scheme://host[:port]``, or ``null``) may call."""
    if allowed is None:
        return True
    try:
        parts = urlsplit(origin.strip())
    except ValueError:  # "http://[evil"
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        return False
    return host_allowed(parts.netloc, allowed, wildcard=wildcard)


def _json_type(content_type: str) -> bool:
    """``application/json``, with at most a UTF-8 ``charset`` (RFC 8259 JSON is UTF-8)."""
    media, *params = (part.strip().lower() for part in content_type.split(";"))
    if media != "application/json":
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


def _error(message: str, status: int, code: str) -> tuple[int, bytes]:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return status, json.dumps(body).encode("utf-8")


class RequestGuard:
    """ASGI middleware refusing foreign hosts and origins (403) and non-JSON bodies (415)."""

    def __init__(self, app: ASGIApp, *, allowed: frozenset[str] | None, wildcard: bool) -> None:
        self.app = app
        self.allowed = allowed
        self.wildcard = wildcard

    def refusal(self, method: str, headers: dict[str, str]) -> tuple[int, bytes] | None:
        """The status and JSON body refusing a request, or None to serve it."""
        host = headers.get("host")
        if host is None or not host_allowed(host, self.allowed, wildcard=self.wildcard):
            return _error(f"Host {host!r} is not this server's name; a request through another name "
                          "(DNS rebinding) is refused. Start rt serve with --allowed-host NAME to "
                          "serve that name", 403, "host_not_allowed")
        origin = headers.get("origin")
        if origin is not None and not origin_allowed(origin, self.allowed, wildcard=self.wildcard):
            return _error(f"requests from web pages of {origin!r} are refused; rt serve answers browser "
                          "pages only from its own origin (--allowed-host adds names)", 403, "origin_not_allowed")
        if method in _BODY_METHODS and not _json_type(headers.get("content-type", "")):
            given = headers.get("content-type", "none")
            return _error(f"Content-Type {given!r} is not accepted; send the body as JSON with "
                          "Content-Type: application/json", 415, "unsupported_media_type")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # a repeated header counts once, by its first value, as Starlette reads it too
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        refused = self.refusal(scope["method"], headers)
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, body = refused
        logger.warning("refused %s %s: %s", scope["method"], scope.get("path", ""), body.decode("utf-8"))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode("ascii")),
                                (b"vary", b"Origin")]})
        await send({"type": "http.response.body", "body": body})
