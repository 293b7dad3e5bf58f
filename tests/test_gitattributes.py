"""``.gitattributes``: rt's own files check out with LF on Git for Windows too, binaries untouched."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                                reason="needs a git checkout")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_text_files_check_out_with_lf_and_binaries_are_left_alone() -> None:
    attrs = _git("check-attr", "text", "eol", "--", "docs/windows.md", "runtime/fsutil.py", "models/x.gguf",
                 "notes/policy.pdf")
    assert "docs/windows.md: eol: lf" in attrs and "runtime/fsutil.py: eol: lf" in attrs
    assert "models/x.gguf: text: unset" in attrs and "notes/policy.pdf: text: unset" in attrs


def test_every_tracked_text_file_is_stored_with_lf() -> None:
    stored = [line.split()[0] for line in _git("ls-files", "--eol").splitlines()]
    assert stored and set(stored) <= {"i/lf", "i/none", "i/-text"}
