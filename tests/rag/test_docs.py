"""The README's main job: index rt's docs and ask its question, on the defaults.

The docs are a snapshot (tests/rag/docs_snapshot/, copied from docs/): editing docs/ must not
change what the tiny model answers here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.rag.conftest import run

DOCS = Path(__file__).resolve().parent / "docs_snapshot"
README_QUESTION = "How does rt keep memory use low?"


@pytest.mark.slow  # indexes all of the docs snapshot (168 kB)
def test_readme_question_is_answered_from_the_docs_with_a_citation(tmp_path: Path) -> None:
    index = tmp_path / "docs-index"
    code, out, err = run("index", str(DOCS), "--index", str(index), "--no-progress")
    assert code == 0, err
    # no --model: the embedded SmolLM2 default, as in the README; one thread, because the text is
    # compared and llama.cpp's numerics change with the thread count rt picks from the busy cores
    code, out, err = run("ask", README_QUESTION, "--index", str(index), "--json", "--max-tokens", "96",
                         "--threads", "1")
    assert code == 0, err
    answer = json.loads(out)
    print(answer["answer"])
    assert answer["covered"] and answer["citations"]
    cited = answer["sources"][answer["citations"][0] - 1]
    assert Path(cited["path"]).name == "memory.md"
    assert "memory-map" in answer["answer"] or "mmap" in answer["answer"]
