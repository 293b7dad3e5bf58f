"""rt's child processes on Windows, checked here with faked platform facts: ``sys.platform``
set to ``win32``, a fake kernel32 that records its calls, and Windows' unsigned (and signed)
NTSTATUS exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import runtime.process.windows as windows
from convert import quantize
from runtime.config import LoadOptions
from runtime.llm import worker
from runtime.process import lifeline
from runtime.process.crash import diagnose


class FakeFunction:
    def __init__(self, kernel: FakeKernel32, name: str, result: Any) -> None:
        self.kernel, self.name, self.result = kernel, name, result
        self.restype: Any = None
        self.argtypes: Any = None

    def __call__(self, *args: Any) -> Any:
        self.kernel.calls.append((self.name, args))
        return self.result


class FakeKernel32:
    """kernel32 as rt calls it; ``results`` gives each function's return value."""

    def __init__(self, **results: Any) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.results = {"GetErrorMode": 0, "SetErrorMode": 0, **results}

    def __getattr__(self, name: str) -> FakeFunction:
        if name not in self.results:
            raise AttributeError(name)
        function = FakeFunction(self, name, self.results[name])
        setattr(self, name, function)
        return function


@pytest.fixture()
def on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")


def fake_kernel32(monkeypatch: pytest.MonkeyPatch, **results: Any) -> FakeKernel32:
    kernel = FakeKernel32(**results)
    monkeypatch.setattr(windows, "kernel32", lambda: kernel)
    return kernel


# --- exit codes --------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [0xC000013A, 0xC000013A - (1 << 32)])
def test_ctrl_c_exit_status_is_named_whether_it_arrives_unsigned_or_signed(code: int) -> None:
    error = diagnose(code)
    assert "0xC000013A Ctrl-C" in error.message and error.returncode == code


@pytest.mark.parametrize("code", [0xC0000374, -1073740940])
def test_heap_corruption_is_a_native_crash(code: int) -> None:
    error = diagnose(code)
    assert "0xC0000374 heap corruption" in error.message and "rt info MODEL" in str(error)


@pytest.mark.parametrize("code", [0xC0000005, -1073741819])
def test_access_violation_signed_is_not_mistaken_for_a_signal(code: int) -> None:
    assert "0xC0000005 access violation" in diagnose(code).message


@pytest.mark.parametrize("code", [0xC0001234, 0xC0001234 - (1 << 32), 0x80000003])
def test_unknown_ntstatus_is_shown_in_hex(code: int) -> None:
    error = diagnose(code)
    assert f"Windows status 0x{code & 0xFFFFFFFF:08X}" in error.message, error.message
    assert str(code) not in error.message
    assert "0x" in diagnose(code, started=False).message  # not "could not start (exit code 3221230132)"


def test_exit_code_3_on_windows_is_the_c_runtimes_abort(on_windows: None) -> None:
    error = diagnose(3, repack=True)
    assert "code 3: an abort" in error.message and "try without --repack" in str(error)
    assert "abort" in diagnose(3, started=False).message


def test_exit_code_3_elsewhere_is_just_a_code() -> None:
    assert diagnose(3).message == "the model process exited unexpectedly with code 3"


def test_signals_stay_signals() -> None:
    assert "SIGSEGV" in diagnose(-11).message and "SIGKILL" in diagnose(-9).message


# --- the error dialog --------------------------------------------------------------------------
def test_the_child_turns_off_windows_error_dialogs(on_windows: None, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = fake_kernel32(monkeypatch, GetErrorMode=0x0004)  # a flag the parent set stays
    windows.suppress_error_dialogs()
    assert kernel.calls[-1] == ("SetErrorMode", (0x0004 | 0x0001 | 0x0002 | 0x8000,))


def test_no_error_mode_call_off_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = fake_kernel32(monkeypatch)
    windows.suppress_error_dialogs()
    assert kernel.calls == []


def test_the_model_process_and_the_quantizer_turn_off_error_dialogs_first() -> None:
    # the call sits in both children's start-up, before anything native is loaded
    import inspect

    from runtime.llm import child

    for source in (inspect.getsource(child.main), inspect.getsource(quantize._child)):
        assert source.index("suppress_error_dialogs()") < source.index("llama")


# --- no console window -------------------------------------------------------------------------
class Started(Exception):
    pass


def _capture_popen(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def popen(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        raise Started

    monkeypatch.setattr(subprocess, "Popen", popen)
    return seen


@pytest.mark.parametrize("console, flags", [(0, 0x08000000), (0x1234, 0)])
def test_no_console_window_per_model_load_from_a_gui_host(on_windows: None, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path, console: int, flags: int) -> None:
    fake_kernel32(monkeypatch, GetConsoleWindow=console)
    seen = _capture_popen(monkeypatch)
    with pytest.raises(Started):
        worker.WorkerEngine(tmp_path / "m.gguf", LoadOptions())
    assert seen["creationflags"] == flags
    seen.clear()
    with pytest.raises(Started):
        quantize.quantize_gguf(tmp_path / "a.gguf", tmp_path / "b.gguf", "Q4_K_M")
    assert seen["creationflags"] == flags


def test_no_creation_flags_off_windows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_kernel32(monkeypatch, GetConsoleWindow=0)
    seen = _capture_popen(monkeypatch)
    with pytest.raises(Started):
        worker.WorkerEngine(tmp_path / "m.gguf", LoadOptions())
    assert seen["creationflags"] == 0


# --- the parent-death watcher ------------------------------------------------------------------
class Exited(Exception):
    pass


def _exit(code: int) -> None:
    raise Exited(code)


@pytest.mark.parametrize("handle", [0x50, 0])
def test_the_lifeline_waits_on_the_parents_handle_then_exits(monkeypatch: pytest.MonkeyPatch, handle: int) -> None:
    kernel = fake_kernel32(monkeypatch, OpenProcess=handle, WaitForSingleObject=0)
    monkeypatch.setattr(lifeline.os, "_exit", _exit)
    with pytest.raises(Exited) as exited:
        lifeline._watch_windows(4242)
    assert exited.value.args == (lifeline.EXIT_CODE,)
    assert kernel.calls[0] == ("OpenProcess", (0x00100000, False, 4242))  # SYNCHRONIZE
    if handle:  # a handle: wait for ever on it
        assert kernel.calls[1] == ("WaitForSingleObject", (handle, 0xFFFFFFFF))
    else:  # no handle: the parent is already gone
        assert len(kernel.calls) == 1


def test_watch_parent_picks_the_windows_watcher_on_windows(on_windows: None, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Any] = []

    class Thread:
        def __init__(self, target: Any, args: tuple[Any, ...], name: str, daemon: bool) -> None:
            started.append((target, args, daemon))

        def start(self) -> None:
            pass

    monkeypatch.setenv(lifeline.PARENT_PID_VARIABLE, "4242")
    monkeypatch.setattr(lifeline.threading, "Thread", Thread)
    lifeline.watch_parent()
    assert started == [(lifeline._watch_windows, (4242,), True)]
