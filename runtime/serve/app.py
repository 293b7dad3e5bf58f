"""The OpenAI-compatible HTTP API of ``rt serve``, as a Starlette application.

``GET /v1/models``, ``POST /v1/chat/completions`` (streamed as server-sent events or not, and
with ``"rag": {...}`` answered from an index with ``sources`` and ``coverage``),
``POST /v1/completions``, ``POST /v1/embeddings``, ``POST /tokenize`` (llama-server's shape, so
that rt's remote client can budget prompts with the served model's tokenizer) and
``GET /health``. Every ``/v1`` and ``/tokenize`` call needs the API key as a Bearer token when
the server has one. Errors have OpenAI's ``{"error": {"message", "type", "param", "code"}}``
shape.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runtime.errors import (
    ConfigError,
    ContextOverflowError,
    IndexNotFoundError,
    InputError,
    ModelCrashedError,
    RtError,
    UnsupportedModelError,
)
from runtime.serve import sse
from runtime.serve.config import ServeOptions
from runtime.serve.guard import RequestGuard, allowed_hosts
from runtime.serve.host import ModelHost
from runtime.serve.jobs import Result, ask, generate
from runtime.serve.queue import GenerationQueue, QueueFull
from runtime.serve.schemas import (
    BadRequest,
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    TokenizeRequest,
    parse_body,
)
from runtime.serve.shapes import ChatShape, Shape, TextShape
from runtime.serve.shutdown import Shutdown

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


def create_app(host: ModelHost, options: ServeOptions = ServeOptions()) -> Starlette:
    """The application serving ``host``'s model; closing the app (lifespan end) closes ``host``.

    Requests naming another host or origin, and non-JSON bodies, are refused before any work
    (:mod:`runtime.serve.guard`). ``app.state.shutdown`` (a :class:`Shutdown`) is told of a
    shutdown signal; running requests are ended ``options.drain_seconds`` later.
    """
    shutdown = Shutdown(options.drain_seconds)
    api = _Api(host, options, shutdown)

    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            host.close()

    routes = [
        Route("/health", api.health, methods=["GET"]),
        Route("/v1/models", api.guarded(api.models), methods=["GET"]),
        Route("/v1/chat/completions", api.guarded(api.chat), methods=["POST"]),
        Route("/v1/completions", api.guarded(api.completions), methods=["POST"]),
        Route("/v1/embeddings", api.guarded(api.embeddings), methods=["POST"]),
        Route("/tokenize", api.guarded(api.tokenize), methods=["POST"]),
    ]
    guard = Middleware(RequestGuard, allowed=allowed_hosts(options.host, options.port, options.allowed_hosts),
                       wildcard=options.wildcard)
    app = Starlette(routes=routes, middleware=[guard], lifespan=contextlib.asynccontextmanager(lifespan))
    app.state.shutdown = shutdown
    return app


def error_for(exc: RtError) -> BadRequest:
    """The HTTP answer to an rt error raised while serving a request."""
    if isinstance(exc, ContextOverflowError):
        return BadRequest(str(exc), code="context_length_exceeded")
    if isinstance(exc, (InputError, ConfigError, UnsupportedModelError)):
        return BadRequest(str(exc))
    if isinstance(exc, IndexNotFoundError):
        return BadRequest(str(exc), status=404, code="index_not_found", param="rag.index")
    if isinstance(exc, ModelCrashedError):
        return BadRequest(f"{exc} (the model is loaded again for the next request)", status=500,
                          code="model_crashed", error_type="server_error")
    if isinstance(exc, ConnectionError):  # a remote backend failed
        return BadRequest(str(exc), status=502, code="backend_error", error_type="server_error")
    return BadRequest(str(exc), status=500, code="rt_error", error_type="server_error")


def _error_response(error: BadRequest) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


class _Api:
    def __init__(self, host: ModelHost, options: ServeOptions, shutdown: Shutdown) -> None:
        self.host = host
        self.options = options
        self.shutdown = shutdown
        self.queue = GenerationQueue(options.max_queue)

    # --- the frame every endpoint shares ------------------------------------------------
    def guarded(self, handler: Handler) -> Handler:
        """``handler`` behind the API key, with errors answered in OpenAI's shape."""

        async def endpoint(request: Request) -> Response:
            try:
                self._authorize(request)
                return await handler(request)
            except BadRequest as error:
                return _error_response(error)
            except QueueFull as full:
                return _error_response(self._busy(full))
            except RtError as exc:
                return _error_response(error_for(exc))
            except ClientDisconnect:
                return Response(status_code=499)
            except Exception as exc:  # noqa: BLE001 - a request must not take the server down
                logger.exception("internal error serving %s", request.url.path)
                return _error_response(BadRequest(f"internal error: {type(exc).__name__}: {exc}", status=500,
                                                  code="internal_error", error_type="server_error"))

        return endpoint

    def _authorize(self, request: Request) -> None:
        key = self.options.api_key
        if not key:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        # digests of equal length: the comparison's time tells nothing about the key, its length included
        matches = hmac.compare_digest(hashlib.sha256(token.strip().encode()).digest(),
                                      hashlib.sha256(key.encode()).digest())
        if scheme.lower() != "bearer" or not matches:
            raise BadRequest("missing or wrong API key; send it as 'Authorization: Bearer KEY'", status=401,
                             code="invalid_api_key", error_type="authentication_error",
                             headers={"WWW-Authenticate": "Bearer"})

    def _busy(self, full: QueueFull) -> BadRequest:
        seconds = self.options.retry_after * (1 + full.waiting // 4)
        return BadRequest(f"the server is busy: {full.waiting} requests are waiting for the model; "
                          f"retry in {seconds} s", status=429, code="queue_full", error_type="rate_limit_error",
                          headers={"Retry-After": str(seconds)})

    async def _body(self, request: Request) -> bytes:
        limit = self.options.max_body
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BadRequest(f"the request body is {declared} bytes; this server accepts at most {limit}",
                             code="body_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(f"the request body is over {limit} bytes, the most this server accepts",
                                 code="body_too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_model(self, name: str | None, *, embeddings: bool = False) -> None:
        if name is None or name in self._model_names(embeddings):
            return
        known = ", ".join(sorted(self._model_names(embeddings)))
        raise BadRequest(f"model {name!r} is not served here (served: {known})", status=404,
                         param="model", code="model_not_found")

    def _model_names(self, embeddings: bool) -> set[str]:
        if embeddings:
            return {self._embedding_id(), "default"}
        return {self.host.model_id, "default"}

    def _embedding_id(self) -> str:
        return self.host.embedding_model_id

    # --- endpoints -----------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        counters = self.host.counters
        return JSONResponse({
            "status": "ok",
            "model": self.host.model_id,
            "model_loaded": self.host.loaded,
            "model_pid": self.host.pid,
            "queue": {"running": self.queue.running, "waiting": self.queue.waiting,
                      "max_waiting": self.queue.max_waiting},
            "generations": {"completed": counters.completed, "cancelled": counters.cancelled,
                            "failed": counters.failed},
            "crashes": counters.crashes,
            "loads": counters.loads,
        })

    async def models(self, request: Request) -> Response:
        created = int(time.time())
        n_ctx = self.host.n_ctx
        data = [
            {"id": self.host.model_id, "object": "model", "created": created, "owned_by": "rt",
             "context_length": n_ctx},
            {"id": self._embedding_id(), "object": "model", "created": created, "owned_by": "rt",
             "type": "embedding"},
        ]
        return JSONResponse({"object": "list", "data": data})

    async def tokenize(self, request: Request) -> Response:
        body = parse_body(await self._body(request), TokenizeRequest, limit=self.options.max_body)
        async with self.queue.turn():
            tokens = await self.host.call(lambda host: host.model.tokenize(body.content,  # type: ignore[attr-defined]
                                                                           add_special=body.add_special))
        return JSONResponse({"tokens": tokens})

    async def embeddings(self, request: Request) -> Response:
        body = parse_body(await self._body(request), EmbeddingRequest, limit=self.options.max_body)
        texts = body.texts()
        if not texts or len(texts) > self.options.max_embedding_inputs:
            raise BadRequest(f"input must hold 1 to {self.options.max_embedding_inputs} texts, got {len(texts)}",
                             param="input")
        if any(not text.strip() for text in texts):
            raise BadRequest("input holds an empty text", param="input")
        self._check_model(body.model, embeddings=True)
        name, vectors = await self.host.embed(texts)
        data = []
        for i, vector in enumerate(vectors):
            value: Any = (base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
                          if body.encoding_format == "base64" else [float(x) for x in vector])
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(len(text.split()) for text in texts)
        return JSONResponse({"object": "list", "model": name, "data": data,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def completions(self, request: Request) -> Response:
        body = parse_body(await self._body(request), CompletionRequest, limit=self.options.max_body)
        self._check_model(body.model)
        options = body.generate_options(self._n_ctx())
        job = generate(body.text(), None, options)
        return await self._respond(request, body.stream, job, TextShape(self.host.model_id, body.include_usage))

    async def chat(self, request: Request) -> Response:
        body = parse_body(await self._body(request), ChatRequest, limit=self.options.max_body)
        self._check_model(body.model)
        options = body.generate_options(self._n_ctx())
        messages = body.chat_messages()
        if body.rag is not None:
            self.host.index_folder(body.rag.index)  # an unknown index is refused before queueing
            job = ask(messages, options, index=body.rag.index, k=body.rag.k, answer_anyway=body.rag.answer_anyway)
        else:
            job = generate(None, messages, options)
        return await self._respond(request, body.stream, job, ChatShape(self.host.model_id, body.include_usage))

    def _n_ctx(self) -> int:
        return self.host.n_ctx

    async def _respond(self, request: Request, stream: bool, job: Any, shape: Shape) -> Response:
        if stream:
            return await self._respond_stream(job, shape)
        async with self.queue.turn():
            result = await self._collect(request, job)
        return JSONResponse(shape.whole(result))

    async def _collect(self, request: Request, job: Any) -> Result:
        """Run ``job`` to the end, or stop it when the client disconnects or the server stops."""
        events = self.host.stream(job)
        watcher = asyncio.ensure_future(_disconnected(request))
        ending = asyncio.ensure_future(self.shutdown.ending.wait())
        step: asyncio.Future[Any] | None = None
        try:
            while True:
                step = asyncio.ensure_future(events.__anext__())
                await asyncio.wait({step, watcher, ending}, return_when=asyncio.FIRST_COMPLETED)
                if ending.done() and not step.done():
                    await _stop(step, timeout=self.shutdown.stop_seconds)
                    raise self.shutdown.error()
                if not step.done():  # the client went away: stop the generation
                    await _stop(step)
                    raise ClientDisconnect()
                kind, value = step.result()
                if kind == "done":
                    return value  # type: ignore[no-any-return]
        finally:
            watcher.cancel()
            ending.cancel()
            await _close(events, step)

    async def _respond_stream(self, job: Any, shape: Shape) -> Response:
        turn = self.queue.turn()
        await turn.__aenter__()  # queue full: raises QueueFull here, answered 429

        async def body() -> AsyncIterator[bytes]:
            events = self.host.stream(job)
            ending = asyncio.ensure_future(self.shutdown.ending.wait())
            step: asyncio.Future[Any] | None = None
            try:
                yield sse.event(shape.first())
                while True:
                    step = asyncio.ensure_future(events.__anext__())
                    await asyncio.wait({step, ending}, return_when=asyncio.FIRST_COMPLETED)
                    if not step.done():  # the server is stopping: end the stream as an error, completely
                        await _stop(step, timeout=self.shutdown.stop_seconds)
                        yield sse.event(self.shutdown.error().body())
                        break
                    try:
                        kind, value = step.result()
                    except StopAsyncIteration:
                        break
                    if kind == "piece":
                        yield sse.event(shape.piece(value))
                    else:
                        for chunk in shape.last(value):
                            yield sse.event(chunk)
                yield sse.DONE
            except RtError as exc:
                yield sse.event(error_for(exc).body())
                yield sse.DONE
            finally:
                ending.cancel()
                await _close(events, step)
                await turn.__aexit__(None, None, None)

        return sse.EventStream(body())


_LEFT_RUNNING: weakref.WeakSet[asyncio.Future[Any]] = weakref.WeakSet()


async def _stop(step: asyncio.Future[Any], *, timeout: float | None = None) -> None:
    """Cancel a pending step of a generation's events, which stops the generation, and wait for
    the model to be idle; at most ``timeout`` seconds (a shutdown), after which the step is left
    to end when the model process does (:meth:`ModelHost.close` ends it)."""
    step.cancel()
    await asyncio.wait({step}, timeout=timeout)
    step.add_done_callback(_retrieve)
    if not step.done():
        _LEFT_RUNNING.add(step)


def _retrieve(step: asyncio.Future[Any]) -> None:
    """Take a stopped step's outcome, so that asyncio does not log it as never retrieved."""
    if not step.cancelled():
        step.exception()


async def _close(events: AsyncIterator[Any], step: asyncio.Future[Any] | None) -> None:
    """Close a generation's events: stop a step still pending (its response was cancelled: the
    client left), then close the iterator unless a step left running by a shutdown still uses it."""
    if step is not None and not step.done():
        if step in _LEFT_RUNNING:
            return
        await _stop(step)
    await events.aclose()  # type: ignore[attr-defined]


async def _disconnected(request: Request) -> None:
    """Returns when the client has closed the connection."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


