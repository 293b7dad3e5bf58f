"""One model process per (model file, load options), shared by the tests that only look at what rt
prints around an answer (``--json`` shapes, sources, citations, CLI flags).

Starting SmolLM2's process costs 1-2 s (an interpreter, llama.cpp's import, the load); the
formatting tests started about one each. A module opts in with
``pytestmark = pytest.mark.usefixtures("shared_model_process")``: every in-process
:class:`runtime.llm.model.Model` its tests open then borrows a process from the pool instead of
starting one, and ``Model.close()`` hands it back. What a fresh process would not have is taken
away on every loan and after every test, so a borrowed process generates what a new one would:

- the KV cache is emptied (``WorkerEngine.clear_cache``): no prompt reuses a previous test's tokens,
  and ``usage.cached_tokens`` counts what the test itself cached;
- the saved prompt prefix (``RT_HOME/cache/prefix``, which every fresh process of a test starts
  without, its RT_HOME being new) is deleted after each test. The pool's processes keep their own
  RT_HOME, so a test's RT_HOME holds no model files.

Tests that kill, crash, interrupt or time the model process, read its pid or the files it writes
under RT_HOME, or set ``RT_DEBUG``/``RT_TEST_CRASH`` keep their own: they do not opt in, and the
pool lends nothing while either variable is set or when the options ask for llama.cpp's log.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from runtime.config import GenerateOptions, LoadOptions
from runtime.llm.types import Completion
from runtime.llm.worker import WorkerEngine
from runtime.llm.yes_no import YesNo

# SmolLM2 holds ~250 MB per process; three keys (ctx 512, 2048, 4096, say) cover the formatting tests.
MAX_PROCESSES = 4


def _end(engine: WorkerEngine) -> None:
    # closing stdin flushes the request a dead process never read: BrokenPipeError
    try:
        engine.close()
    except OSError:
        pass


class _Loan:
    """A pooled process as one Model's engine: ``close`` hands it back instead of ending it."""

    def __init__(self, pool: ModelPool, key: tuple[Any, ...], engine: WorkerEngine) -> None:
        self._pool, self._key, self._engine = pool, key, engine
        self.n_ctx, self.n_ctx_train, self.pid = engine.n_ctx, engine.n_ctx_train, engine.pid
        self.returned = False

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]:
        return self._engine.tokenize(text, add_special=add_special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._engine.detokenize(tokens)

    def special_tokens(self) -> dict[str, str]:
        return self._engine.special_tokens()

    def yes_no(self, prompt: str, probe: str) -> YesNo:
        return self._engine.yes_no(prompt, probe)

    def stream(self, prompt: str, options: GenerateOptions = GenerateOptions()) -> Generator[str, None, Completion]:
        return self._engine.stream(prompt, options)

    def close(self) -> None:
        if not self.returned:
            self.returned = True
            self._pool.give_back(self._key, self._engine)


class ModelPool:
    """Idle model processes by key, the least recently used ended first beyond ``MAX_PROCESSES``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._idle: dict[tuple[Any, ...], list[WorkerEngine]] = {}
        self._order: list[tuple[Any, ...]] = []
        self.loans: list[_Loan] = []
        self.started = 0

    @staticmethod
    def lends_to(options: LoadOptions) -> bool:
        return (options.isolate and not options.verbose
                and not os.environ.get("RT_DEBUG") and not os.environ.get("RT_TEST_CRASH"))

    def lend(self, path: Path, options: LoadOptions, memory: Any) -> _Loan:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns, options)
        idle = self._idle.get(key, [])
        engine = None
        while idle and engine is None:
            candidate = idle.pop()
            try:
                candidate.clear_cache()
                engine = candidate
            except Exception:  # noqa: BLE001 - a process that died between tests is replaced
                _end(candidate)
        if engine is None:
            engine = self._start(path, options, memory)
        loan = _Loan(self, key, engine)
        self.loans.append(loan)
        return loan

    def _start(self, path: Path, options: LoadOptions, memory: Any) -> WorkerEngine:
        # the process reads RT_HOME when it saves a prompt prefix: the pool's own, not the test's
        before = os.environ.get("RT_HOME")
        os.environ["RT_HOME"] = str(self.home)
        try:
            engine = WorkerEngine(path, options, memory=memory)
        finally:
            if before is None:
                del os.environ["RT_HOME"]
            else:
                os.environ["RT_HOME"] = before
        self.started += 1
        return engine

    def give_back(self, key: tuple[Any, ...], engine: WorkerEngine) -> None:
        try:
            engine.clear_cache()  # also stops a stream the test left unfinished
        except Exception:  # noqa: BLE001 - crashed or interrupted: not lent again
            _end(engine)
            return
        self._idle.setdefault(key, []).append(engine)
        if key in self._order:
            self._order.remove(key)
        self._order.append(key)
        while sum(len(engines) for engines in self._idle.values()) > MAX_PROCESSES:
            oldest = next(k for k in self._order if self._idle.get(k))
            self._idle[oldest].pop(0).close()
            if not self._idle[oldest]:
                self._order.remove(oldest)

    def after_test(self) -> None:
        """Hand back what the test left open, and forget the prefix it saved."""
        for loan in self.loans:
            loan.close()
        self.loans.clear()
        shutil.rmtree(self.home / "cache" / "prefix", ignore_errors=True)

    def close(self) -> None:
        for engines in self._idle.values():
            for engine in engines:
                engine.close()
        self._idle.clear()


@pytest.fixture(scope="session")
def model_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelPool]:
    pool = ModelPool(tmp_path_factory.mktemp("shared-model-home"))
    yield pool
    pool.close()


@pytest.fixture
def shared_model_process(model_pool: ModelPool, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelPool]:
    """Every in-process ``Model`` of this test borrows its process from ``model_pool``."""
    from runtime.llm.model import Model

    start_own = Model._start_engine

    def borrow(model: Model) -> Any:
        if not model_pool.lends_to(model.options):
            return start_own(model)
        return model_pool.lend(model.path, model.options, model.memory)

    monkeypatch.setattr(Model, "_start_engine", borrow)
    try:
        yield model_pool
    finally:
        model_pool.after_test()
