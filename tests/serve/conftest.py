"""Servers on loopback for the serve tests: `rt serve` and llama-cpp-python's own server, started
as real subprocesses on free ports, with a small indexed corpus."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

STARTUP_SECONDS = 120

CORPUS = {
    "lease.md": "# Flat lease\n\nThe lease of the flat at 12 Harbour Street renews on 1 March 2027. "
                "The monthly rent is 950 euros, due on the first day of each month.\n",
    "boiler.md": "# Boiler\n\nThe boiler was serviced by Acme Heating on 14 October 2025. "
                 "The next service is due in October 2026; the warranty runs until 2028.\n",
    "garden.md": "# Garden\n\nThe tomatoes are planted in the south bed. They are watered every "
                 "evening in July and August.\n",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server subprocess; ``url`` is its ``/v1`` address."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log
        self.root = f"http://127.0.0.1:{port}"
        self.url = self.root + "/v1"

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.root + path, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {STARTUP_SECONDS} s: {self.log.read_text()[-3000:]}")

    def health(self) -> dict:
        return httpx.get(self.root + "/health", timeout=10).json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(args: Sequence[str], *, cwd: Path, env: dict[str, str], ready: str, port: int) -> Server:
    log = cwd / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(list(args), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, port, log)
    try:
        server.wait_ready(ready)
    except BaseException:
        server.stop()
        raise
    return server


def rt_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RT_")}
    return env | {"RT_HOME": str(home), "HF_HOME": str(home / "hf"), "HF_HUB_OFFLINE": "1"} | extra


def start_rt_serve(tmp: Path, *options: str, **env: str) -> Server:
    """``rt serve`` on a free loopback port, from ``tmp`` (its own RT_HOME there).

    One thread: on a shared 2-core machine llama.cpp's two threads wait for each other at every
    token whenever one is descheduled (measured: 16 SmolLM2 tokens in 11.8 s on 2 threads, 0.66 s
    on one, under a load average of 15).
    """
    port = free_port()
    command = [sys.executable, "-c", "from runtime.cli import main; main()", "serve", "--port", str(port),
               "--ctx", "2048", "--threads", "1", *options]
    return start(command, cwd=tmp, env=rt_env(tmp / "rt-home", **env), ready="/health", port=port)


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:  # type: ignore[no-untyped-def]
    """The three-file corpus, indexed once with the real MiniLM (the session's)."""
    from runtime.index import Index

    root = tmp_path_factory.mktemp("serve-corpus")
    docs = root / "docs"
    docs.mkdir()
    for name, text in CORPUS.items():
        (docs / name).write_text(text, encoding="utf-8")
    folder = root / "notes"
    with Index.open(folder, create=True, embedder=embedder) as index:
        index.add([docs])
    return folder


@pytest.fixture(scope="session")
def rt_server(tmp_path_factory: pytest.TempPathFactory, corpus_index: Path) -> Iterator[Server]:
    """One `rt serve` with SmolLM2 and the corpus index, for the tests that only read from it."""
    server = start_rt_serve(tmp_path_factory.mktemp("rt-serve"), "--index", str(corpus_index))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def any_corpus_index(store: str, request: pytest.FixtureRequest, corpus_index: Path) -> str:
    """The corpus index in each store: ``corpus_index``'s folder, or a PostgreSQL copy of it
    (pushed, not re-embedded)."""
    if store == "folder":
        return str(corpus_index)
    from runtime.index.push import push

    url = request.getfixturevalue("pg_server").create_database("rt_serve_corpus")
    push(corpus_index, url)
    return str(url)


@pytest.fixture(scope="session")
def any_rt_server(store: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  any_corpus_index: str) -> Iterator[Server]:
    """`rt serve` over the corpus in each store (``any_corpus_index``); the folder's is ``rt_server``."""
    if store == "folder":
        yield request.getfixturevalue("rt_server")
        return
    server = start_rt_serve(tmp_path_factory.mktemp("rt-serve-pg"), "--index", any_corpus_index)
    yield server
    server.stop()


# llama-cpp-python's server as `python -m llama_cpp.server`, with llama.cpp's extra buffer types
# off as rt loads models: their repacked AMX kernels crash the server on some CPUs (this CI
# machine's: a segfault on the first chat request). The server's own code runs unchanged.
_PLAIN_WEIGHTS_SERVER = """
import runpy, sys
import llama_cpp.llama_cpp as native
_default = native.llama_model_default_params
def _plain():
    params = _default()
    params.use_extra_bufts = False
    return params
native.llama_model_default_params = _plain
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="session")
def llama_cpp_server(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[Server]:
    """llama-cpp-python's own OpenAI-compatible server with SmolLM2, started from an empty
    folder (``python -m`` puts the working folder first on sys.path)."""
    pytest.importorskip("llama_cpp.server")
    port = free_port()
    cwd = tmp_path_factory.mktemp("llama-cpp-server")
    command = [sys.executable, "-c", _PLAIN_WEIGHTS_SERVER, "--model", str(smollm2_path), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--verbose", "false"]
    server = start(command, cwd=cwd, env=dict(os.environ), ready="/v1/models", port=port)
    yield server
    server.stop()
