"""The suite takes Ctrl-C as a foreground program does, however it was started.

A shell without job control starts a background job (``python -m pytest ... &`` in a script, as
the fresh-clone runs were started) with SIGINT ignored; Python keeps it ignored and every child
inherits that across exec, so each test that presses Ctrl-C on an ``rt`` child waited out its
60 s. It looked like a leak from the test that ran first (tests/conftest.py's per-test guard
named it), but it was there before any test ran."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import signal

def test_sigint_is_the_default_from_the_first_test():
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
"""


@pytest.mark.skipif(sys.platform == "win32", reason="a background job's ignored SIGINT is POSIX shells' doing")
def test_a_suite_started_with_sigint_ignored_gives_its_first_test_the_default_handler(tmp_path: Path) -> None:
    (tmp_path / "test_probe.py").write_text(PROBE, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path), "-o", "log_cli=true", "--log-cli-level=WARNING", str(tmp_path / "test_probe.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # as `cmd &` in a script
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    said = done.stdout + done.stderr
    assert "the shell that started pytest (a background job?) left SIGINT as" in said
    assert "test_probe.py::test_sigint_is_the_default_from_the_first_test left SIGINT" not in said
