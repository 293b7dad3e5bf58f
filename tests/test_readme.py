"""The README's promises: its first two lines are the install-and-run commands, and its Python
API example runs as written (over a small notes folder made here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_opens_with_the_two_commands() -> None:
    block = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block is not None
    first, second = block.group(1).strip().splitlines()
    assert first.startswith("pip install torch==2.13.0 -e . && rt index docs && rt ask ")
    assert second == "pip install torch==2.13.0 -e '.[test]' && python -m pytest"
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert second in ci.splitlines()


def test_python_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = re.search(r"## Python API\n\n```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert code is not None
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "lease.md").write_text(
        "# Flat lease\n\nThe lease of the flat on Elm Street is up for renewal on 1 March 2027.\n"
        "The landlord must be told two months before, by 1 January 2027.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    exec(compile(code.group(1), str(README), "exec"), {})  # noqa: S102 - the README's own example
    out = capsys.readouterr().out
    assert "1 added" in out and "notes/lease.md" in out and "lease.md" in out.splitlines()[-1]
