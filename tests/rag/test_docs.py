"""The README's main job: index the repository's own docs/ and ask its question, on the defaults."""

from __future__ import annotations

import json
from pathlib import Path

from tests.rag.conftest import run

DOCS = Path(__file__).resolve().parents[2] / "docs"
README_QUESTION = "How does rt keep memory use low?"


def test_readme_question_is_answered_from_the_docs_with_a_citation(tmp_path: Path) -> None:
    index = tmp_path / "docs-index"
    code, out, err = run("index", str(DOCS), "--index", str(index), "--no-progress")
    assert code == 0, err
    # no --model: the embedded SmolLM2 default, as in the README
    code, out, err = run("ask", README_QUESTION, "--index", str(index), "--json", "--max-tokens", "96")
    assert code == 0, err
    answer = json.loads(out)
    print(answer["answer"])
    assert answer["covered"] and answer["citations"]
    cited = answer["sources"][answer["citations"][0] - 1]
    assert Path(cited["path"]).name == "memory.md"
    assert "memory-map" in answer["answer"] or "mmap" in answer["answer"]
