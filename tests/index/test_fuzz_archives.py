"""A short seeded fuzz of the archive readers (issue 21); benchmarks/fuzz_archives.py runs long.

It runs in a fresh interpreter so that the peak RSS it checks is the readers' alone, and with a
timeout so that a hang fails instead of stopping the suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_mutated_archives_end_as_text_or_a_one_line_skip() -> None:
    out = subprocess.run([sys.executable, "benchmarks/fuzz_archives.py", "--cases", "160", "--seed", "21",
                          "--bound-s", "20", "--rss-gb", "1.0"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "160 cases, 0 findings" in out.stdout, out.stdout
    # both outcomes happened (the mutations are counted in the output)
    assert "'skipped'" in out.stdout and "'text'" in out.stdout
