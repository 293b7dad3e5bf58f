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
