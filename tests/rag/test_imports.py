"""Commands that do not embed text must not import torch (it costs seconds on every run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "sentence_transformers", "transformers", "faiss")

# Runs one rt command in a fresh interpreter, then reports which heavy modules it imported.
PROBE = """
import json, sys
from runtime.cli import cli
try:
    cli(sys.argv[1:], prog_name="rt", standalone_mode=False)
except SystemExit:
    pass
print("\\n" + json.dumps({name: name in sys.modules for name in %r}))
""" % (HEAVY,)


def imported(*args: str) -> dict[str, bool]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [
    ("--help",), ("models",), ("ask", "--help"), ("chat", "--help"),
], ids=lambda a: " ".join(a))
def test_light_commands_do_not_import_torch(args: tuple[str, ...]) -> None:
    found = imported(*args)
    assert not any(found.values()), found


def test_info_does_not_import_torch(smollm2_path: Path) -> None:
    found = imported("info", str(smollm2_path))
    assert not any(found.values()), found


def test_the_probe_can_see_torch(index_dir: Path) -> None:
    """The check can fail: a command that embeds a query does import torch."""
    found = imported("search", "descale", "--index", str(index_dir))
    assert found["torch"] and found["sentence_transformers"]
