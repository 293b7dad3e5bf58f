"""SIGTERM during ``rt convert``: the same cleanup as Ctrl-C, one line, exit status 143 (issue 21)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime import fsutil

ROOT = Path(__file__).resolve().parents[2]

# The real `rt convert` command line in a child that parks after writing the first tensor, so
# the test signals it at a known point in the middle of the write.
_CHILD = """
import sys, time
from pathlib import Path
import gguf

ready = Path(sys.argv[1])
original = gguf.GGUFWriter.write_tensor_data
def parked(self, tensor, *args, **kwargs):
    original(self, tensor, *args, **kwargs)
    self.flush()
    ready.touch()
    time.sleep(600)
gguf.GGUFWriter.write_tensor_data = parked
sys.argv = ["rt", *sys.argv[2:]]
from _rt_bootstrap import main
main()
"""

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Windows cannot send SIGTERM to a process")


def _temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{fsutil.TMP_MARK}*"))


def test_sigterm_mid_write_removes_the_temporary_file(tiny_llama: Path, tmp_path: Path) -> None:
    out_dir, ready = tmp_path / "models", tmp_path / "ready"
    final = out_dir / "tiny.gguf"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(ready), "convert", "--from", str(tiny_llama), "--quant", "F16",
         "--out", str(final)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            assert child.poll() is None, f"the converting child exited early: {child.communicate()[1]}"
            assert time.monotonic() < deadline, "the converting child never started writing"
            time.sleep(0.05)
        assert _temp_files(out_dir), "no temporary file while writing"
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 143, stderr
    lines = [line.strip() for line in stderr.splitlines() if "rt:" in line]
    assert lines == ["rt: terminated (SIGTERM); nothing was left half-written"], stderr
    assert "Traceback" not in stderr
    assert _temp_files(out_dir) == []
    assert not final.exists()
