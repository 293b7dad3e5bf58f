"""The README's promises: its first two lines are the install-and-run commands, and its Python
API example runs as written (over a small notes folder made here)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.rag.conftest import run

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_opens_with_the_two_commands() -> None:
    block = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block is not None
    first, second = block.group(1).strip().splitlines()
    assert first.startswith("pip install torch==2.13.0 -e . && rt index docs && rt ask ")
    assert second == "pip install torch==2.13.0 -e '.[test]' && python -m pytest"
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert second in ci.splitlines()


def readme_question() -> str:
    """The question the README's first command asks."""
    block = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block is not None
    question = re.search(r'rt ask "([^"]+)"', block.group(1))
    assert question is not None
    return question.group(1)


def test_no_document_under_docs_quotes_the_readme_question() -> None:
    """The first command indexes docs/ and asks one question. A passage that only quotes that
    question (a command line in a code block) ranks among the first sources while answering
    nothing, and the embedded SmolLM2 then wrote a loop ("the [serving.md.md.md] module ...")
    instead of docs/memory.md's first paragraph; without it, it quotes that paragraph."""
    question = readme_question()
    quoting = [p.name for p in (README.parent / "docs").glob("**/*.md")
               if question in p.read_text(encoding="utf-8")]
    assert quoting == []


@pytest.fixture(scope="module")
def live_docs_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/ as it is now, indexed on the embedded defaults as the README's first command does."""
    index = tmp_path_factory.mktemp("live-docs") / "index"
    code, _, err = run("index", str(README.parent / "docs"), "--index", str(index), "--no-progress")
    assert code == 0, err
    return index


@pytest.mark.slow  # indexes all of docs/ with MiniLM
@pytest.mark.parametrize("threads", ["1", "2"])
def test_the_readme_question_over_the_live_docs_is_answered_with_evidence_and_no_loop(
        live_docs_index: Path, threads: str) -> None:
    """The README's first command, on docs/ as edited now (tests/rag/test_docs.py asks over a
    snapshot, so that docs edits do not change its exact answer). Twice this year an unrelated
    docs edit changed which passages ranked first and SmolLM2-135M answered with a loop; this is
    where such an edit shows. Only the answer's shape is checked, not its words: it ends on its
    own (not a loop, not the token limit), cites retrieved sources, and a cited source supports
    at least one sentence. Threads are pinned (1 and 2, what small machines pick): the count
    changes llama.cpp's numerics."""
    code, out, err = run("ask", readme_question(), "--index", str(live_docs_index), "--json", "--threads", threads)
    assert code == 0, err
    answer = json.loads(out)
    print(answer["answer"])
    assert answer["finish_reason"] == "stop", (answer["finish_reason"], answer["answer"])
    assert answer["covered"] and answer["citations"], answer["answer"]
    assert all(1 <= n <= len(answer["sources"]) for n in answer["citations"])
    assert answer["supported"] is True, answer["claims"]


def test_the_windows_block_runs_as_written_in_powershell_and_cmd_and_matches_the_posix_one() -> None:
    text = README.read_text(encoding="utf-8")
    posix = re.search(r"```bash\n(.*?)```", text, re.S)
    windows = re.search(r"### On Windows[^\n]*\n(.*?)```powershell\n(.*?)```", text, re.S)
    assert posix is not None and windows is not None
    above, block = windows.group(1), windows.group(2)
    lines = block.strip().splitlines()
    # PowerShell 5.1 rejects &&; cmd passes single quotes on to pip; neither expands ~; a line
    # continuation differs between them (` and ^), so every command is one line.
    for line in lines:
        assert "&&" not in line and "'" not in line and "~" not in line, line
        assert not line.rstrip().endswith(("`", "^", "\\")), line
    posix_commands = [c.strip() for line in posix.group(1).strip().splitlines() for c in line.split(" && ")]
    as_posix = [line.replace("python -m pip ", "pip ").replace('".[test]"', "'.[test]'") for line in lines]
    assert as_posix == posix_commands
    # the prerequisites come before the command that needs them, with how to check each
    for needed in ("`cl`", "`cmake --version`", "Build Tools", "No CMAKE_C_COMPILER could be found"):
        assert needed in above, needed


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
