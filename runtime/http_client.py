"""JSON over HTTP to an OpenAI-compatible server: one ``httpx`` client with bounded timeouts and
retries, whose every failure is one :class:`~runtime.errors.RemoteBackendError` naming the URL
and what to check. The remote model (:mod:`runtime.llm.remote`) and the remote embedder
(:mod:`runtime.index.embedders.remote`) both talk through it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from runtime.config import RemoteOptions
from runtime.errors import RemoteBackendError
from runtime.redact import redact_credentials

RETRY_STATUSES = (429, 502, 503, 504)
# An OpenAI-style JSON answer (a model list, a chat completion, 64 embeddings of 4096 numbers)
# is a few MB; a hostile server's endless body is refused before it is held or parsed.
MAX_JSON_BYTES = 32 * 1024 * 1024
ERROR_BODY_BYTES = 64 * 1024  # of an error answer, for its message


@dataclass(frozen=True)
class ServerAddress:
    """A server URL taken apart: ``root`` and ``base`` (``root/v1``) are what messages show (no
    user name, password or query: a query often carries a key); ``query`` goes back on every
    request and ``auth`` (from ``user:password@``) becomes HTTP basic authentication."""

    root: str
    base: str
    query: str
    auth: tuple[str, str] | None

    def url(self, path: str, *, root: bool = False) -> str:
        """The request URL of ``path`` under ``base`` (``root`` with ``root``), query kept."""
        prefix = self.root if root else self.base
        scheme, netloc, base_path, _, _ = urlsplit(prefix)
        return urlunsplit((scheme, netloc, base_path + path, self.query, ""))


def api_base(url: str) -> tuple[str, str]:
    """``(root, root/v1)`` for a server URL given with or without ``/v1`` (no credentials, no query)."""
    address = server_address(url)
    return address.root, address.base


def server_address(url: str) -> ServerAddress:
    """``url`` as a :class:`ServerAddress`, its path with or without ``/v1``."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname if parts.port is None or parts.port >= 0 else None  # a bad port raises
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not host:
        raise RemoteBackendError(f"{redact_credentials(url)!r} is not an http:// or https:// URL",
                                 url=redact_credentials(url),
                                 hint="give the server's address, e.g. http://127.0.0.1:8080/v1")
    netloc = parts.netloc.rpartition("@")[2]
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    root = urlunsplit((parts.scheme.lower(), netloc, path, "", ""))
    auth = None
    if parts.username is not None or parts.password is not None:
        auth = (unquote(parts.username or ""), unquote(parts.password or ""))
    return ServerAddress(root, root + "/v1", parts.query, auth)


class RemoteClient:
    """JSON over HTTP to an OpenAI-compatible server, failing with one-line rt errors."""

    def __init__(self, url: str, *, api_key: str | None = None, options: RemoteOptions = RemoteOptions(),
                 what: str = "--llm-url") -> None:
        import httpx

        self.address = server_address(url)
        self.root, self.base = self.address.root, self.address.base
        self.options = options
        self.what = what
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # credentials in the URL go as basic auth (an API key wins), never in a message
        auth = self.address.auth if not api_key else None
        self._client = httpx.Client(headers=headers, auth=auth, timeout=httpx.Timeout(
            options.read_timeout, connect=options.connect_timeout))

    def close(self) -> None:
        self._client.close()

    def get(self, path: str) -> Any:
        """``GET base+path`` as JSON."""
        with contextlib.closing(self._open("GET", path)) as response:
            return self._json(response)

    def get_root(self, path: str) -> Any:
        """``GET root+path`` as JSON (llama-server's ``/props`` lies outside ``/v1``)."""
        with contextlib.closing(self._open("GET", path, root=True)) as response:
            return self._json(response)

    def post(self, path: str, body: Mapping[str, Any], *, root: bool = False,
             max_bytes: int = MAX_JSON_BYTES) -> Any:
        """``POST`` JSON to ``base+path`` (``root+path`` with ``root``), answer as JSON; an
        answer over ``max_bytes`` is refused before it is parsed."""
        with contextlib.closing(self._open("POST", path, body, root=root)) as response:
            return self._json(response, max_bytes)

    def events(self, path: str, body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """The server-sent events of a streamed ``POST``; closing the iterator closes the
        connection, which tells the server to stop generating."""
        with contextlib.closing(self._open("POST", path, body)) as response:
            for line in self._lines(response):
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                event = self._decode(data)
                if isinstance(event, dict) and event.get("error"):
                    raise self._error_from(event, response.status_code)
                yield event

    def _lines(self, response: Any) -> Iterator[str]:
        import httpx

        try:
            yield from response.iter_lines()
        except httpx.TimeoutException:
            raise self._timed_out() from None
        except httpx.TransportError as exc:
            raise RemoteBackendError(f"{self.base} broke off the answer ({type(exc).__name__}: {_quote(exc)})",
                                     url=self.base, hint="check the server's log") from None

    def _open(self, method: str, path: str, body: Mapping[str, Any] | None = None, *, root: bool = False) -> Any:
        """A streamed response with a 2xx status, after bounded retries; the caller closes it."""
        import httpx

        url = self.address.url(path, root=root)
        shown = (self.root if root else self.base) + path  # without credentials or query
        for attempt in range(self.options.retries + 1):
            last = attempt == self.options.retries
            try:
                request = self._client.build_request(method, url, json=body)
                response = self._client.send(request, stream=True)
            except httpx.ConnectError as exc:
                if last:
                    raise RemoteBackendError(
                        f"cannot connect to {self.base} ({_reason(exc)})", url=self.base,
                        hint=f"check that the server is running and that {self.what} is right") from None
                time.sleep(min(0.5 * 2 ** attempt, self.options.max_wait))
                continue
            except httpx.TimeoutException:
                raise self._timed_out() from None
            except httpx.HTTPError as exc:
                raise RemoteBackendError(f"request to {shown} failed ({type(exc).__name__}: {_quote(exc)})",
                                         url=self.base) from None
            if response.status_code < 300:
                return response
            error_body = _head(response, ERROR_BODY_BYTES)
            response.close()
            if response.status_code in RETRY_STATUSES and not last:
                time.sleep(self._wait(response, attempt))
                continue
            raise self._status_error(response, shown, error_body)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, response: Any, attempt: int) -> float:
        try:
            seconds = float(response.headers.get("retry-after", ""))
        except ValueError:
            seconds = 0.5 * 2 ** attempt
        return max(0.0, min(seconds, self.options.max_wait))

    def _timed_out(self) -> RemoteBackendError:
        return RemoteBackendError(
            f"{self.base} did not answer within {self.options.read_timeout:.0f} s", url=self.base,
            hint="the server may be overloaded or the model too slow; check it, or lower --max-tokens")

    def _status_error(self, response: Any, url: str, body: str) -> RemoteBackendError:
        status = response.status_code
        detail = _server_message(body, response.reason_phrase)
        if status in (401, 403):
            return RemoteBackendError(f"{self.base} refused the request: HTTP {status} ({detail})", url=self.base,
                                      status=status, hint="check --llm-api-key or RT_LLM_API_KEY")
        if status == 404:
            return RemoteBackendError(f"{url} answered HTTP 404 ({detail})", url=self.base, status=status,
                                      hint="check the model name and that the URL is the server's /v1 address")
        if status >= 500:
            return RemoteBackendError(f"{self.base} failed: HTTP {status} ({detail})", url=self.base, status=status,
                                      hint="check the server's log; rt retried "
                                           f"{self.options.retries} times where that could help")
        return RemoteBackendError(f"{url} refused the request: HTTP {status} ({detail})", url=self.base,
                                  status=status)

    def _error_from(self, event: Mapping[str, Any], status: int) -> RemoteBackendError:
        error = event.get("error")
        message = error.get("message") if isinstance(error, Mapping) else str(error)
        return RemoteBackendError(f"{self.base} failed mid-answer: {_one_line(str(message))}", url=self.base,
                                  status=status, hint="check the server's log")

    def _json(self, response: Any, max_bytes: int = MAX_JSON_BYTES) -> Any:
        import httpx

        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise self._too_large(max_bytes)
        chunks, size = [], 0
        try:
            for chunk in response.iter_bytes():  # decoded: a compressed bomb counts at full size
                size += len(chunk)
                if size > max_bytes:
                    raise self._too_large(max_bytes)
                chunks.append(chunk)
        except httpx.TimeoutException:
            raise self._timed_out() from None
        except httpx.HTTPError as exc:
            raise RemoteBackendError(f"{self.base} broke off the answer ({type(exc).__name__}: {_quote(exc)})",
                                     url=self.base, hint="check the server's log") from None
        return self._decode(b"".join(chunks).decode(response.encoding or "utf-8", errors="replace"))

    def _too_large(self, max_bytes: int) -> RemoteBackendError:
        return RemoteBackendError(f"{self.base} answered more than {max_bytes:,} bytes; refused before reading it",
                                  url=self.base, hint="is this an OpenAI-compatible server?")

    def _decode(self, text: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise RemoteBackendError(f"{self.base} answered something that is not JSON: {_one_line(text)[:120]!r}",
                                     url=self.base, hint="is this an OpenAI-compatible server's /v1 address?") \
                from None


def _reason(exc: BaseException) -> str:
    """"connection refused" when the OS said so (httpx wraps the ``ConnectionRefusedError``)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return _quote(exc) or type(exc).__name__


def _quote(exc: BaseException) -> str:
    """An exception's text for a message: one line, no credentials of a URL it quotes."""
    return _one_line(redact_credentials(str(exc)))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _head(response: Any, limit: int) -> str:
    """At most ``limit`` bytes of an error answer's body (the message; the rest is not read)."""
    import httpx

    data = b""
    try:
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) >= limit:
                break
    except httpx.HTTPError:
        pass
    return data[:limit].decode("utf-8", errors="replace")


def _server_message(body: str, reason: str) -> str:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, ValueError):
        return _one_line(body) or reason
    error = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
    if isinstance(error, Mapping):
        error = error.get("message", error)
    return _one_line(str(error))
