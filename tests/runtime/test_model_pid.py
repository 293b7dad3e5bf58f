"""``Model.pid`` names the process that holds the model, even when ``sys.executable`` is a launcher.

On Windows a venv's ``python.exe`` is a launcher that starts the real interpreter as its own
child, so the pid ``subprocess.Popen`` returns is the launcher's. Imitated here with a shell
script standing in for ``sys.executable`` that runs Python as its child (no ``exec``).
"""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import psutil
import pytest

from runtime.config import GenerateOptions, LoadOptions
from runtime.llm.model import Model

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/maps")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_model_pid_is_the_process_that_has_the_gguf_mapped(smollm2_path: Path) -> None:
    with Model(smollm2_path, LoadOptions(n_ctx=256, threads=1)) as model:
        assert psutil.pid_exists(model.pid) and model.pid != os.getpid()
        assert str(smollm2_path.resolve()) in _maps(model.pid)


def test_model_pid_is_the_interpreter_not_the_launcher_that_started_it(
        smollm2_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = tmp_path / "python-launcher"
    launcher.write_text(f'#!/bin/sh\n"{sys.executable}" "$@"\n')  # no exec: Python runs as its child
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(sys, "executable", str(launcher))
    with Model(smollm2_path, LoadOptions(n_ctx=256, threads=1)) as model:
        launched = model._engine._process.pid  # type: ignore[union-attr]
        assert model.pid != launched
        assert psutil.Process(model.pid).ppid() == launched
        assert str(smollm2_path.resolve()) in _maps(model.pid)
        assert str(smollm2_path.resolve()) not in _maps(launched)
        assert model.complete("Hello", GenerateOptions(max_tokens=2)).text is not None
        pid = model.pid
    deadline = time.monotonic() + 30  # close() ends the interpreter, not only its launcher
    while not _gone(pid):
        assert time.monotonic() < deadline, "the model process outlived close()"
        time.sleep(0.05)


def test_rt_serve_health_reports_the_model_process_behind_a_launcher(smollm2_path: Path, tmp_path: Path) -> None:
    import socket
    import subprocess

    import httpx

    launcher = tmp_path / "python-launcher"
    launcher.write_text(f'#!/bin/sh\n"{sys.executable}" "$@"\n')
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (f"import sys; sys.executable = {str(launcher)!r}\n"
            "from runtime.cli import main; main()")
    server = subprocess.Popen([sys.executable, "-c", code, "serve", "--port", str(port), "--model", str(smollm2_path),
                               "--threads", "1"], cwd=Path(__file__).resolve().parents[2],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, health = time.monotonic() + 180, None
        while health is None:
            assert server.poll() is None and time.monotonic() < deadline, "rt serve did not come up"
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
            except httpx.HTTPError:
                time.sleep(0.1)
        pid = health["model_pid"]
        launched = [p.pid for p in psutil.Process(server.pid).children() if p.pid != pid]
        assert psutil.Process(pid).ppid() in launched  # the interpreter, whose parent is the launcher
        assert str(smollm2_path.resolve()) in _maps(pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
