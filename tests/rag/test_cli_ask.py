"""``rt ask`` (retrieval, the default) and ``rt chat`` through Click's runner, with real parts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.postgres import postgres_in_full_run
from tests.rag.conftest import run

# Model processes are shared across the session, emptied between tests (tests/shared_model.py)
pytestmark = pytest.mark.usefixtures("shared_model_process")

QUESTION = "How often must the Velomax chain be oiled?"


def test_ask_json_holds_every_field(any_index_dir: str, smollm2_path: Path) -> None:
    code, out, err = run("ask", QUESTION, "--index", any_index_dir, "--model", str(smollm2_path),
                         "--json", "--max-tokens", "40", "-k", "3")
    assert code == 0, err
    data = json.loads(out)
    assert data["covered"] is True and data["answer"].startswith("According to [")
    # packing may leave out a weak passage or merge two of a file: at most the 3 retrieved
    assert 1 <= len(data["sources"]) <= 3 and data["dropped"] == 0
    for n, source in enumerate(data["sources"], start=1):
        assert source["n"] == n
        assert {"path", "page", "lines", "score", "similarity", "text"} <= set(source)
        assert Path(source["path"]).is_absolute() and source["text"].strip()
        assert source["page"] is None and len(source["lines"]) == 2
    assert Path(data["sources"][0]["path"]).name == "velomax.txt"
    assert data["citations"] and all(1 <= n <= 3 for n in data["citations"])
    usage = data["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    timings = data["timings"]
    for key in ("retrieval", "query_embedding", "search", "prompt_processing", "generation",
                "model_load", "embedding_model_load", "total"):
        assert timings[key] >= 0, key
    assert timings["prompt_processing"] > 0 and timings["generation"] > 0


@postgres_in_full_run
def test_ask_streams_the_answer_then_the_sources(any_index_dir: str, smollm2_path: Path) -> None:
    code, out, err = run("ask", QUESTION, "--index", any_index_dir, "--model", str(smollm2_path),
                         "--max-tokens", "40", "-k", "2")
    assert code == 0, err
    answer, _, sources = out.partition("\nSources:\n")
    sources = sources.partition("\nEvidence:\n")[0]
    assert answer.startswith("According to [") and re.search(r"\[\d\]", answer)
    lines = sources.strip().splitlines()
    assert 1 <= len(lines) <= 2  # packing leaves out a passage far below the best
    assert re.match(r"\[1\] .*velomax\.txt, lines? \d+(-\d+)? +\(similarity 0\.\d\d", lines[0].strip())
    assert all(line.strip().startswith(f"[{n}] ") for n, line in enumerate(lines, start=1))


@postgres_in_full_run
def test_unrelated_question_says_the_documents_do_not_cover_it(any_index_dir: str, smollm2_path: Path) -> None:
    code, out, err = run("ask", "Who painted the Mona Lisa?", "--index", any_index_dir,
                         "--model", str(smollm2_path))
    assert code == 0, err
    assert "do not cover this question" in out and "--answer-anyway" in out
    assert "Sources:" not in out


def test_tiny_context_reports_dropped_sources_on_stderr(index_dir: Path, smollm2_path: Path) -> None:
    code, out, err = run("ask", "How do I descale the Zorblat 3000?", "--index", str(index_dir),
                         "--model", str(smollm2_path), "--ctx", "512", "--max-tokens", "200",
                         "--stop", ".", "-k", "4", "--json", "--no-pack")  # whole chunks overflow
    assert code == 0, err
    data = json.loads(out)
    assert data["dropped"] > 0 and len(data["sources"]) + data["dropped"] == 4
    assert re.search(rf"rt: note: {data['dropped']} of 4 sources did not fit the context", err)


def test_question_longer_than_the_context_is_a_one_line_error(index_dir: Path, smollm2_path: Path) -> None:
    question = "Zorblat descaling " + "please " * 600
    code, out, err = run("ask", question, "--index", str(index_dir), "--model", str(smollm2_path),
                         "--ctx", "512", "--max-tokens", "64")
    assert code != 0 and out == ""
    first = err.strip().splitlines()[0]
    assert re.match(r"rt: error: the question needs \d+ prompt tokens .* plus 64 reserved for the "
                    r"answer, but the context holds 512; .*--ctx", first), first
    assert "Traceback" not in err


def test_no_index_says_how_to_make_one(smollm2_path: Path) -> None:
    code, out, err = run("ask", QUESTION, "--model", str(smollm2_path))
    assert code == 1 and out == ""
    assert err.startswith("rt: error: no index at ") and "run `rt index PATH`" in err


def test_missing_model_says_how_to_get_one(index_dir: Path, tmp_path: Path) -> None:
    code, out, err = run("ask", QUESTION, "--index", str(index_dir), "--model", str(tmp_path / "gone.gguf"))
    assert code == 1 and out == ""
    assert "does not exist" in err and "rt convert" in err.splitlines()[0]


@postgres_in_full_run
def test_chat_answers_two_turns_from_stdin_reusing_the_cache(any_index_dir: str, smollm2_path: Path) -> None:
    turns = "How do I descale the Zorblat 3000?\nHow many gears does the Velomax have?\nexit\nignored?\n"
    code, out, err = run("chat", "--index", any_index_dir, "--model", str(smollm2_path), "--json",
                         "--max-tokens", "32", input=turns)
    assert code == 0, err
    first, second = (json.loads(line) for line in out.strip().splitlines())
    assert first["question"].startswith("How do I descale") and second["question"].startswith("How many gears")
    assert first["covered"] and second["covered"]
    assert Path(second["sources"][0]["path"]).name == "velomax.txt"  # retrieved again
    assert second["usage"]["cached_tokens"] > 0


def test_chat_streams_text_turns(index_dir: Path, smollm2_path: Path) -> None:
    code, out, err = run("chat", "--index", str(index_dir), "--model", str(smollm2_path),
                         "--max-tokens", "24", input="Who painted the Mona Lisa?\n")
    assert code == 0, err
    assert "do not cover this question" in out
