"""A model process that dies (native crash, OOM kill) is diagnosed, never silent.

The crashes are real: ``RT_TEST_CRASH`` makes the model process read address 0 (SIGSEGV) or
SIGKILL itself, as the kernel's out-of-memory killer would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from runtime.config import LoadOptions
from runtime.errors import ModelCrashedError
from runtime.llm.model import Model
from runtime.process.crash import diagnose

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "What is the capital of France?"
# how a null read in the model process shows: a signal on POSIX, an NTSTATUS exit code on Windows
WINDOWS = sys.platform == "win32"
SEGV = "0xC0000005 access violation" if WINDOWS else "SIGSEGV"
SEGV_CODE = 0xC0000005 if WINDOWS else -11
SEGV_TRACE = "Windows fatal exception: access violation" if WINDOWS else "Fatal Python error: Segmentation fault"


def rt(*args: str, crash: str | None = None, debug: bool = False) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("RT_TEST_CRASH", None)
    if crash:
        env["RT_TEST_CRASH"] = crash
    if debug:
        env["RT_DEBUG"] = "1"
    return subprocess.run(
        [sys.executable, "-c", "from runtime.cli import main; main()", *args, "--threads", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def test_native_crash_of_the_model_process_is_diagnosed_in_one_line_through_the_cli() -> None:
    result = rt("ask", "--no-rag", QUESTION, crash="segv")
    assert result.returncode == ModelCrashedError.exit_code
    assert result.stderr.startswith(f"rt: error: the model process died with {SEGV}")
    assert "native crash" in result.stderr and "RT_DEBUG=1" in result.stderr
    assert len(result.stderr.splitlines()) == 1  # faulthandler's ~100 lines only under RT_DEBUG


def test_native_crash_under_rt_debug_also_shows_faulthandlers_trace() -> None:
    result = rt("ask", "--no-rag", QUESTION, crash="segv", debug=True)
    assert result.returncode == ModelCrashedError.exit_code
    assert SEGV_TRACE in result.stderr  # faulthandler's trace
    assert f"rt: error: the model process died with {SEGV}" in result.stderr.splitlines()[-1]


def test_llama_cpp_abort_is_one_line_that_quotes_the_failed_check() -> None:
    # a real ggml_abort(): on Linux it would also attach gdb for a backtrace
    result = rt("ask", "--no-rag", QUESTION, crash="abort")
    assert result.returncode == ModelCrashedError.exit_code
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr[-3000:]
    assert result.stderr.startswith("rt: error: the model process")  # SIGABRT; exit code 3 on Windows
    assert "(rt-test.c:1: GGML_ASSERT(rt test) failed)" in result.stderr
    debug = rt("ask", "--no-rag", QUESTION, crash="abort", debug=True)
    assert len(debug.stderr.splitlines()) > 20 and "GGML_ASSERT(rt test) failed" in debug.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_oom_kill_of_the_model_process_is_diagnosed_with_the_memory_numbers() -> None:
    result = rt("ask", "--no-rag", QUESTION, crash="kill")
    assert result.returncode == ModelCrashedError.exit_code
    assert "rt: error: the model process died with SIGKILL" in result.stderr
    assert "out-of-memory killer" in result.stderr
    assert "the load was estimated at" in result.stderr and "available" in result.stderr
    assert "--ctx" in result.stderr and "--kv-type q8_0" in result.stderr


def test_crash_raises_model_crashed_error_in_the_python_api(smollm2_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RT_TEST_CRASH", "segv")
    with Model(smollm2_path, LoadOptions(n_ctx=256, threads=1)) as model:
        with pytest.raises(ModelCrashedError, match=SEGV) as caught:
            model.complete("Hello")
        assert caught.value.returncode == SEGV_CODE
        with pytest.raises(ModelCrashedError, match="no longer running"):
            model.count_tokens("again")


def test_repack_that_crashes_falls_back_with_a_warning() -> None:
    result = rt("ask", "--no-rag", "--repack", QUESTION, crash="probe")
    assert result.returncode == 0, result.stderr
    assert "rt: warning: --repack crashed a test load" in result.stderr
    assert SEGV in result.stderr and "loading without repacking" in result.stderr
    assert "Paris" in result.stdout


def test_repack_on_this_machine_answers_or_falls_back_never_dies_silently(gemma_path: Path) -> None:
    # Gemma's Q4_K weights are ones llama.cpp repacks (SmolLM2's Q4_1 are not)
    result = rt("ask", "--no-rag", "--repack", "--model", str(gemma_path), "--max-tokens", "8", QUESTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    if "crashed a test load" in result.stderr:  # a build whose repack kernels crash: told, not silent
        assert "rt: warning: --repack crashed a test load" in result.stderr


def test_windows_and_unknown_exit_codes_are_explained() -> None:
    assert "0xC0000005 access violation" in str(diagnose(0xC0000005))
    assert "out of memory" in str(diagnose(0xC000012D))
    assert "code 7" in str(diagnose(7))
    assert "try without --repack" in str(diagnose(-11, repack=True))
    assert "SIGBUS" in str(diagnose(-7)) and "mapped model file" in str(diagnose(-7))


INTERRUPTED_IN_PROMPT = """
import os, signal, sys, threading
import psutil
from runtime.config import GenerateOptions, LoadOptions
from runtime.llm.model import Model

model = Model(sys.argv[1], LoadOptions(n_ctx=8192, threads=1))
stream = model.stream("word " * 7000, GenerateOptions(max_tokens=4))
threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    for _ in stream:
        pass
    print("finished")
except KeyboardInterrupt:
    print("interrupted", "child-alive" if psutil.pid_exists(model.pid) else "child-gone")
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_ctrl_c_inside_a_long_prompt_stops_the_model_process_at_once(smollm2_path: Path) -> None:
    # Without killing the child, the interrupt would wait for the whole 7000-token prompt and
    # leave an idle model process behind.
    done = subprocess.run([sys.executable, "-c", INTERRUPTED_IN_PROMPT, str(smollm2_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "interrupted child-gone", (done.stdout, done.stderr[-2000:])


def test_verbose_still_shows_llama_cpps_own_log_on_stderr() -> None:
    result = rt("ask", "--no-rag", QUESTION, "--verbose", "--max-tokens", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "llama_model_loader" in result.stderr  # written by the model process itself


def test_closing_after_a_request_to_a_killed_model_process_raises_nothing_more(smollm2_path: Path) -> None:
    """The request that found the process gone stays in the pipe's buffer; closing must not
    flush it into a BrokenPipeError that hides the crash already reported."""
    model = Model(smollm2_path, LoadOptions(n_ctx=256, threads=1))
    try:
        child = psutil.Process(model.pid)
        child.kill()  # SIGKILL; TerminateProcess on Windows
        psutil.wait_procs([child], timeout=60)
        with pytest.raises(ModelCrashedError):
            model.complete("Hello")
    finally:
        model.close()
