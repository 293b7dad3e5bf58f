"""The loaded model, the indexes and the embedder behind ``rt serve``, used from one thread.

The model is loaded once and stays loaded (in rt's model process, :mod:`runtime.llm.worker`).
Every call that touches it runs in one worker thread, so generations never interleave; the
event loop only moves text pieces from that thread to the HTTP responses. A generation stops
between two tokens when its client goes away (:meth:`ModelHost.run` is told so by ``cancel``).
When the model process crashes, the request it served gets rt's diagnosis and the next request
loads the model again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runtime.config import GenerateOptions, LoadOptions
from runtime.env import is_index_url
from runtime.errors import IndexNotFoundError, ModelCrashedError

if TYPE_CHECKING:
    import numpy as np

    from runtime.index.embedders.base import Embedder
    from runtime.llm.types import Prompt
    from runtime.rag.rag import RAG

logger = logging.getLogger(__name__)

Emit = Callable[[str], None]
Job = Callable[[Any, Emit, threading.Event], Any]


def _ignore(_text: str) -> None:
    """The ``emit`` of a job that streams nothing."""


class ServedModel(Protocol):
    """What the server needs from a model: a local :class:`~runtime.llm.model.Model` or a
    :class:`~runtime.llm.remote.RemoteModel`."""

    n_ctx: int

    def stream(self, prompt: Prompt | str, options: Any = ...) -> Any: ...

    def close(self) -> None: ...


class _TrackedModel:
    """The host's model as RAG sessions see it: always the loaded one (so a session outlives a
    reload after a crash), and every stream it starts is remembered, so that a cancelled answer
    can stop its generation (an answer stream itself has no ``close``)."""

    def __init__(self, host: ModelHost) -> None:
        self._host = host
        self.active: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host.model, name)

    def stream(self, prompt: Prompt | str, options: GenerateOptions = GenerateOptions()) -> Any:
        self.active = self._host.model.stream(prompt, options)
        return self.active

    def stop(self) -> None:
        """Stop the generation a stream left unfinished."""
        active, self.active = self.active, None
        if active is not None:
            active.close()


@dataclass
class Counters:
    """What ``GET /health`` reports about the generations served so far."""

    completed: int = 0
    cancelled: int = 0
    failed: int = 0
    crashes: int = 0
    loads: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class ModelHost:
    """Owns the model (loading it again after a crash), the served indexes and the embedder.

    ``load_model`` makes a new model (called at start and after a crash); ``indexes`` are the
    index folders a request may name, the first being the default. ``make_embedder`` (a remote
    one, say) replaces the index's own embedding model for retrieval and ``/v1/embeddings``.
    """

    def __init__(self, load_model: Callable[[], ServedModel], *, model_id: str,
                 indexes: Sequence[str | Path] = (), load: LoadOptions = LoadOptions(),
                 make_embedder: Callable[[], Embedder] | None = None) -> None:
        self.model_id = model_id
        self.load = load
        self.indexes: list[str | Path] = [p if is_index_url(p) else Path(p) for p in indexes]
        self.counters = Counters()
        self._load_model = load_model
        self._model: ServedModel | None = None
        self._rags: dict[str | Path, RAG] = {}
        self._tracked = _TrackedModel(self)
        self._embedder: Embedder | None = None
        self._make_embedder = make_embedder
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="rt-model")
        self._running = False  # a job is in the model thread
        self._closing = False
        self._embed_thread = ThreadPoolExecutor(1, thread_name_prefix="rt-embed")

    # --- in the model thread ------------------------------------------------------------
    @property
    def model(self) -> ServedModel:
        """The loaded model (loaded again if the last one crashed)."""
        if self._model is None:
            self._model = self._load_model()
            self.counters.loads += 1
        return self._model

    @property
    def n_ctx(self) -> int:
        """The loaded model's context window (the requested one until it is loaded)."""
        return int(getattr(self._model, "n_ctx", 0) or self.load.n_ctx)

    @property
    def embedding_model_id(self) -> str:
        """The name of the model ``/v1/embeddings`` uses (known before it is loaded)."""
        if self._embedder is not None:
            return self._embedder.name
        if self.indexes:
            from runtime.index import Index

            with Index.open(self.indexes[0]) as index:
                return index.embedding_model
        from runtime.index.config import DEFAULT_EMBEDDING_MODEL

        return DEFAULT_EMBEDDING_MODEL

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def pid(self) -> int | None:
        model = self._model
        return int(getattr(model, "pid", 0)) or None if model is not None else None

    def rag(self, index: str | None) -> RAG:
        """The RAG session over ``index`` (a served folder, by path or name; None: the default)."""
        from runtime.index import Index
        from runtime.rag.rag import RAG

        folder = self.index_folder(index)
        session = self._rags.get(folder)
        if session is None:
            opened = Index.open(folder, embedder=self.embedder() if self._make_embedder else None)
            session = RAG(self._tracked, opened)  # type: ignore[arg-type]
            self._rags[folder] = session
        return session

    def index_folder(self, name: str | None) -> str | Path:
        """The served index folder ``name`` means; :class:`IndexNotFoundError` if none."""
        if not self.indexes:
            raise IndexNotFoundError("this server has no index", hint="start it with `rt serve --index DIR`")
        if name is None:
            return self.indexes[0]
        for folder in self.indexes:
            if name in (served_name(folder), str(folder)):
                return folder
        served = ", ".join(served_name(folder) for folder in self.indexes)
        raise IndexNotFoundError(f"index {name!r} is not served here (served: {served})",
                                 hint="name one of those, or start the server with another --index")

    def request_options(self, options: GenerateOptions) -> GenerateOptions:
        """``options`` with this request's generation threads: the cores not busy in other
        processes now (:func:`runtime.llm.threads.sample_generation_threads`, a 0.1 s sample),
        re-checked on every request because a server outlives the load it started under.
        Unchanged when ``--threads`` fixed the count or the model is remote."""
        from runtime.llm.model import Model
        from runtime.llm.threads import sample_generation_threads

        if self.load.threads is not None or options.threads is not None or not isinstance(self.model, Model):
            return options
        return replace(options, threads=sample_generation_threads(self.load.n_threads))

    def stop_generation(self) -> None:
        """Stop the generation a RAG answer left unfinished (its client went away)."""
        self._tracked.stop()

    def _forget_model(self) -> None:
        """After a crash: close what is left, so that the next request loads the model again."""
        model, self._model = self._model, None
        self._tracked.active = None
        if model is not None:
            try:
                model.close()
            except Exception:  # noqa: BLE001 - the process is already gone
                logger.debug("closing the crashed model", exc_info=True)

    def _run_job(self, job: Job, emit: Emit, cancel: threading.Event) -> Any:
        self._running = True
        try:
            return job(self, emit, cancel)
        except ModelCrashedError:
            if not self._closing:
                self.counters.crashes += 1
            self._forget_model()
            raise
        finally:
            self._running = False

    def _end_model_process(self) -> None:
        pid = self.pid
        if pid is None:  # in this process (LoadOptions.isolate off): only the job can stop it
            return
        logger.info("ending the model process %d, still busy at shutdown", pid)
        with contextlib.suppress(OSError):  # already gone
            os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))  # TerminateProcess on Windows

    # --- from the event loop -----------------------------------------------------------
    async def call(self, job: Callable[[ModelHost], Any]) -> Any:
        """Run ``job(host)`` in the model thread (tokenize, load) and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._model_thread, self._run_job,
                                          lambda host, _emit, _cancel: job(host), _ignore, threading.Event())

    async def stream(self, job: Job) -> AsyncGenerator[tuple[str, Any], None]:
        """Run ``job(host, emit, cancel)`` in the model thread; yield ``("piece", text)`` for
        each emitted piece, then ``("done", result)``. Leaving early sets ``cancel`` and waits
        until the job has stopped the model."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def emit(text: str) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, ("piece", text))

        future = loop.run_in_executor(self._model_thread, self._run_job, job, emit, cancel)
        future.add_done_callback(lambda _f: pieces.put_nowait(("end", None)))
        finished = False
        try:
            while True:
                kind, value = await pieces.get()
                if kind == "end":
                    break
                yield kind, value
            result = await future
            finished = True
            self.counters.completed += 1
            yield "done", result
        except BaseException:
            if not finished and not future.done():
                cancel.set()
                self.counters.cancelled += 1
            elif not finished:
                self.counters.failed += 1
            raise
        finally:
            if not future.done():
                cancel.set()
                await asyncio.shield(future)  # the model is idle again before the next turn

    async def embed(self, texts: list[str]) -> tuple[str, np.ndarray]:
        """The embedding model's name and the normalised vectors of ``texts``."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._embed_thread, self._embed, texts)

    def _embed(self, texts: list[str]) -> tuple[str, np.ndarray]:
        embedder = self.embedder()
        return embedder.name, embedder.embed(texts)

    def embedder(self) -> Embedder:
        """``make_embedder``'s, else the default index's embedding model, else the embedded
        all-MiniLM-L6-v2."""
        if self._embedder is None:
            from runtime.index import Index, IndexOptions
            from runtime.index.embedders.factory import query_embedder

            light = IndexOptions().light_embedder
            if self._make_embedder is not None:
                self._embedder = self._make_embedder()
            elif self.indexes:
                with Index.open(self.indexes[0]) as index:
                    self._embedder = query_embedder(index.embedding_model, light=light)
            else:
                self._embedder = query_embedder(None, light=light)
        return self._embedder

    def close(self) -> None:
        """Stop the threads, free the model and close the indexes.

        A job still running was told to stop and has not (the model reads a long prompt without
        looking for "cancel": a minute on a 7B model): its model process is ended at once, so
        that a shutdown keeps its 5 s.
        """
        self._closing = True
        if self._running:
            self._end_model_process()
        self._model_thread.shutdown(wait=True, cancel_futures=True)
        self._embed_thread.shutdown(wait=True, cancel_futures=True)
        for session in self._rags.values():
            session.index.close()
        self._rags.clear()
        if self._model is not None:
            self._model.close()
            self._model = None


def served_name(location: str | Path) -> str:
    """What a request calls a served index: a folder's name, a PostgreSQL database's name."""
    if isinstance(location, Path):
        return location.name
    return location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
