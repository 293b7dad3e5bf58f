"""The memory preflight on Windows, with faked platform facts: ``sys.platform`` is ``win32`` and
kernel32's ``GlobalMemoryStatusEx`` is a fake that fills in chosen figures. The weights are
file-backed (checked against physical memory), the rest is committed (checked against the
commit headroom); Windows' own "paging file is too small" becomes rt's memory error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import runtime.models.memory as memory
from runtime.config import LoadOptions
from runtime.errors import InsufficientMemoryError, ModelLoadError
from runtime.fsutil import human_bytes
from runtime.llm.worker import _with_memory_numbers
from runtime.models.gguf_file import GGUFInfo, inspect_gguf
from runtime.process.crash import diagnose

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


class FakeKernel32:
    def __init__(self, commit: int, physical: int) -> None:
        self.commit, self.physical = commit, physical

    def GlobalMemoryStatusEx(self, status: Any) -> int:  # noqa: N802 - kernel32's name
        filled = status._obj  # what ctypes.byref points at
        assert filled.dwLength == 64  # sizeof(MEMORYSTATUSEX)
        filled.ullAvailPageFile, filled.ullAvailPhys = self.commit, self.physical
        return 1


@pytest.fixture(scope="module")
def smollm2(smollm2_path: Path) -> GGUFInfo:
    return inspect_gguf(smollm2_path)


def windows(monkeypatch: pytest.MonkeyPatch, commit: int, physical: int) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.delenv("RT_MEMORY_LIMIT", raising=False)
    monkeypatch.setattr(memory, "_kernel32", lambda: FakeKernel32(commit, physical))


OPTIONS = LoadOptions(n_ctx=4096)


def test_the_estimate_reads_commit_headroom_and_physical_memory(smollm2: GGUFInfo,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    windows(monkeypatch, commit=3000 * MB, physical=2000 * MB)
    est = memory.estimate_memory(smollm2, OPTIONS)
    assert (est.available, est.physical) == (3000 * MB, 2000 * MB)
    assert "commit headroom" in est.source and est.fits


def test_weights_need_no_commit_only_ram(smollm2: GGUFInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    # the commit headroom holds the KV cache and compute buffers but not the weights as well:
    # the file-backed weights are never charged to it, so the load fits
    probe = memory.estimate_memory(smollm2, OPTIONS)
    windows(monkeypatch, commit=probe.anonymous + MB, physical=probe.weights + MB)
    est = memory.preflight(smollm2, OPTIONS)
    assert est.total > est.available and est.fits


def test_too_little_commit_headroom_is_refused_with_the_page_file_tip(smollm2: GGUFInfo,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    probe = memory.estimate_memory(smollm2, OPTIONS)
    windows(monkeypatch, commit=probe.anonymous - 10 * MB, physical=100_000 * MB)
    with pytest.raises(InsufficientMemoryError) as refused:
        memory.preflight(smollm2, OPTIONS)
    message = str(refused.value)
    assert "of committed memory" in message and "KV cache" in message and "weights" not in message
    assert "commit headroom: RAM + page file" in message and "enlarge the page file" in message
    assert "--kv-type q8_0" in message


def test_weights_larger_than_ram_are_refused_though_commit_is_plentiful(smollm2: GGUFInfo,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    probe = memory.estimate_memory(smollm2, OPTIONS)
    windows(monkeypatch, commit=100_000 * MB, physical=probe.weights // 2)
    with pytest.raises(InsufficientMemoryError) as refused:
        memory.preflight(smollm2, OPTIONS)
    message = str(refused.value)
    assert "weights need" in message and "of RAM" in message and "physical memory" in message
    assert "page file" not in message and "--ctx" not in message  # neither helps mapped weights
    assert "try a smaller model, or closing other programs" in message  # Q4_1: no smaller quantization


def test_rt_memory_limit_still_caps_the_whole_load_on_windows(smollm2: GGUFInfo,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    windows(monkeypatch, commit=100_000 * MB, physical=100_000 * MB)
    monkeypatch.setenv("RT_MEMORY_LIMIT", "50MB")
    with pytest.raises(InsufficientMemoryError, match="RT_MEMORY_LIMIT"):
        memory.preflight(smollm2, OPTIONS)


WINERROR_1455 = "OSError: [WinError 1455] The paging file is too small for this operation to complete"


@pytest.mark.parametrize("text", [WINERROR_1455, "llama_model_load: error loading model: insufficient memory"])
def test_windows_words_for_no_memory_become_rts_memory_error_with_numbers(smollm2: GGUFInfo, text: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    windows(monkeypatch, commit=3000 * MB, physical=2000 * MB)
    est = memory.estimate_memory(smollm2, OPTIONS)
    error = _with_memory_numbers(ModelLoadError(text), est)
    assert isinstance(error, InsufficientMemoryError)
    assert "the system refused memory" in error.message and "needs about" in error.message
    assert f"{human_bytes(3000 * MB)} available (commit headroom" in error.message
    assert f"{human_bytes(2000 * MB)} of RAM" in error.message
    assert "enlarge the page file" in str(error) and "--kv-type q8_0" in str(error)
    other = ModelLoadError("unknown model architecture: 'foo'")
    assert _with_memory_numbers(other, est) is other


def test_a_model_process_dying_on_the_paging_file_says_so(smollm2: GGUFInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    windows(monkeypatch, commit=3000 * MB, physical=2000 * MB)
    est = memory.estimate_memory(smollm2, OPTIONS)
    # the model's worker hands the preflight's reader of refusals to process/'s generic diagnosis
    error = diagnose(0xC0000005, memory=est, log_tail=f"Traceback (most recent call last):\n{WINERROR_1455}\n",
                     refusal=lambda detail: memory.memory_error_from(detail, est))
    assert "paging file is too small" in error.message and "the load was estimated at" in error.message
    assert "enlarge the page file" in str(error)


def test_rt_ask_turns_the_paging_file_error_of_its_model_process_into_one_memory_line() -> None:
    env = dict(os.environ, RT_TEST_CRASH="paging-file")
    result = subprocess.run([sys.executable, "-c", "from runtime.cli import main; main()", "ask", "--no-rag",
                             "Hi", "--threads", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == InsufficientMemoryError.exit_code, result.stderr
    assert result.stderr.startswith("rt: error: the system refused memory while loading the model")
    assert "The paging file is too small" in result.stderr and "needs about" in result.stderr
    assert len(result.stderr.splitlines()) == 1
