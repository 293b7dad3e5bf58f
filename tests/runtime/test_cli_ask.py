"""``rt ask --no-rag`` through Click's runner: streaming, --json, options, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli
from runtime.config import GenerateOptions, LoadOptions

# Model processes are shared across the session, emptied between tests (tests/shared_model.py)
pytestmark = pytest.mark.usefixtures("shared_model_process")

QUESTION = "What is the capital of France?"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [*args, "--threads", "1"] if args[-1] != "--help" else list(args))
    return result.exit_code, result.stdout, result.stderr


def test_ask_no_rag_streams_the_answer() -> None:
    code, out, err = run("ask", "--no-rag", QUESTION)
    assert code == 0, err
    assert "Paris" in out and out.endswith("\n")


def test_ask_json_prints_one_object_with_usage_and_timings(smollm2_path: Path) -> None:
    code, out, err = run("ask", "--no-rag", "--json", "--model", str(smollm2_path), "--max-tokens", "32",
                         "--stop", "Paris", QUESTION)
    assert code == 0, err
    data = json.loads(out)
    assert data["answer"].startswith("The capital of France is") and "Paris" not in data["answer"]
    assert data["finish_reason"] == "stop"
    assert data["usage"]["prompt_tokens"] > 10 and data["usage"]["completion_tokens"] > 0
    assert data["usage"]["cached_tokens"] == 0
    assert data["timings"]["prompt_processing"] > 0 and data["timings"]["generation"] > 0
    assert data["sources"] == [] and data["covered"] is None  # the shape of an answer with retrieval


def test_prompt_longer_than_the_context_is_a_one_line_error() -> None:
    code, out, err = run("ask", "--no-rag", "--ctx", "256", "word " * 400)
    assert code != 0
    lines = err.strip().splitlines()
    assert lines[0].startswith("rt: error: the prompt is ") and "context window holds 256" in lines[0]
    assert "--ctx" in lines[0]
    assert "Traceback" not in err and out == ""


def test_base_model_without_chat_template_gets_a_plain_prompt(gemma_path: Path) -> None:
    code, out, err = run("ask", "--no-rag", "--model", str(gemma_path), "--max-tokens", "16", QUESTION)
    assert code == 0, err
    assert "has no chat template" in err and "rt: warning:" in err
    assert out.strip()


def test_option_defaults_come_from_the_dataclasses() -> None:
    code, out, _ = run("ask", "--help")
    assert code == 0
    out = " ".join(out.split())
    assert f"[default: {LoadOptions().n_ctx};" in out
    assert f"[default: {GenerateOptions().max_tokens};" in out
    for option in ("--model", "--index", "--no-rag", "--json", "--ctx", "--max-tokens", "--temperature",
                   "--top-p", "--seed", "--stop", "--kv-type", "--threads", "--repack", "--force", "--system"):
        assert option in out


def test_empty_question_is_refused() -> None:
    code, _, err = run("ask", "--no-rag", "  ")
    assert code != 0 and "rt: error: the question is empty" in err


def test_system_prompt_without_no_rag_is_refused_not_ignored() -> None:
    result = CliRunner().invoke(cli, ["ask", "--system", "Be terse.", "What is rt?"])
    assert result.exit_code == 1
    assert "--system applies to --no-rag only" in result.stderr and result.stdout == ""
