"""Under an address-space limit (``ulimit -v``) rt ends with one line of its own, never a native abort.

Before the check, ``rt ask`` under a 300 MB limit said "internal error: ImportError", under
600 MB it died with SIGABRT inside ``import torch`` (``std::bad_alloc``) and under 1.5 GB with
SIGSEGV, with no word from rt.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.errors import InsufficientMemoryError
from runtime.fsutil import human_bytes
from runtime.limits import TORCH_ADDRESS_SPACE, check_address_space
from runtime.process.crash import diagnose

ROOT = Path(__file__).resolve().parents[2]
LINUX = sys.platform.startswith("linux")


def _limited(limit: int) -> Callable[[], None]:
    def apply() -> None:
        if sys.platform == "win32":  # preexec_fn is POSIX only; the tests that use it skip there
            raise OSError("no RLIMIT_AS on Windows")
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def _rt(*args: str, limit: int | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from runtime.cli import main; main()", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
                          preexec_fn=_limited(limit) if limit else None)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of an rt whose default index holds one small file (built without a limit)."""
    root = tmp_path_factory.mktemp("limits")
    (root / "docs").mkdir()
    (root / "docs" / "lease.txt").write_text("The lease is up for renewal on 1 March.\n", encoding="utf-8")
    env = {**os.environ, "RT_HOME": str(root / "home")}
    done = _rt("index", str(root / "docs"), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return env


@pytest.mark.skipif(not LINUX, reason="RLIMIT_AS as Linux applies it")
@pytest.mark.parametrize("limit_mb", [300, 600, 1500])
def test_rt_ask_under_a_low_address_space_limit_is_one_rt_line(indexed: dict[str, str], limit_mb: int) -> None:
    limit = limit_mb * 1024 * 1024
    torch_path = {**indexed, "RT_LIGHT_EMBEDDER": "0"}  # the query embedded with torch, as before
    result = _rt("ask", "When is the lease up?", "--threads", "1", "--max-tokens", "4", limit=limit, env=torch_path)
    assert result.returncode == InsufficientMemoryError.exit_code, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rt: error: loading the embedding model (torch) needs about")
    assert f"the limit (ulimit -v) is {human_bytes(limit)}" in lines[0]
    assert "--no-rag" in lines[0]


@pytest.mark.skipif(not LINUX, reason="RLIMIT_AS as Linux applies it")
def test_the_numpy_embedder_gets_rt_ask_past_the_query_under_300_mb(indexed: dict[str, str]) -> None:
    limit = 300 * 1024 * 1024
    result = _rt("ask", "When is the lease up?", "--threads", "1", "--max-tokens", "4", limit=limit, env=indexed)
    assert result.returncode == InsufficientMemoryError.exit_code, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rt: error: ") and "torch" not in lines[0]


@pytest.mark.skipif(not LINUX, reason="RLIMIT_AS as Linux applies it")
def test_the_address_space_check_passes_without_a_limit_and_names_the_numbers_with_one() -> None:
    check_address_space(TORCH_ADDRESS_SPACE, "this")  # the test process has no limit
    script = ("from runtime.limits import check_address_space\n"
              "try:\n    check_address_space(10**9, 'loading X')\n"
              "except MemoryError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          preexec_fn=_limited(500 * 10**6))
    assert done.stdout.startswith("loading X needs about 1.0 GB of address space and the limit (ulimit -v) is 500.0 MB")


def test_a_model_process_that_cannot_start_is_one_line_with_the_failure_it_printed() -> None:
    log = ("Traceback (most recent call last):\n  File \"<string>\", line 1, in <module>\n"
           "ImportError: libllama.so: failed to map segment from shared object\n")
    error = diagnose(1, log_tail=log, started=False)
    assert error.message == ("the model process could not start (exit code 1) "
                             "(ImportError: libllama.so: failed to map segment from shared object)")
    assert error.hint is not None and "refused memory" in error.hint
    abort = diagnose(-6, log_tail="ggml.c:1234: GGML_ASSERT(ctx->mem_buffer != NULL) failed\n#0 0x7f...\n")
    assert abort.message.endswith("(ggml.c:1234: GGML_ASSERT(ctx->mem_buffer != NULL) failed)")
    bad_alloc = diagnose(-6, log_tail="terminate called after throwing an instance of 'std::bad_alloc'\n"
                                      "  what():  std::bad_alloc\n")
    assert "std::bad_alloc" in bad_alloc.message and "refused memory" in str(bad_alloc.hint)
