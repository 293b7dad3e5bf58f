"""Every bad input of issue 2 through the real CLI: `rt info` and `rt ask --no-rag`.

Each must end with one clear error line on stderr (``rt: error: ...`` plus the RT_DEBUG hint),
a non-zero exit and no traceback; none of the bad files may reach llama.cpp.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from runtime.cli import cli
from tests.runtime.bad_gguf import BAD_FILES

HAVE_ASK = importlib.util.find_spec("runtime.cli.ask") is not None
needs_ask = pytest.mark.skipif(not HAVE_ASK, reason="runtime/cli/ask.py (helper H1's `rt ask --no-rag`) is missing")


@pytest.fixture(scope="module")
def bad_files(bad_gguf_files: dict[str, Path]) -> dict[str, Path]:
    return bad_gguf_files


def command(kind: str, model: Path, *extra: str) -> list[str]:
    if kind == "info":
        return ["info", str(model), *extra]
    return ["ask", "--no-rag", "--model", str(model), "--max-tokens", "8", *extra, "What is the capital of France?"]


def assert_one_line_error(result: Result, *words: str) -> str:
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rt: error: "), lines
    assert lines[0].endswith("(RT_DEBUG=1 shows the traceback)"), lines
    for word in words:
        assert word in lines[0]
    return lines[0]


@pytest.mark.parametrize("kind", ["info", pytest.param("ask", marks=needs_ask)])
@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_model_file(kind: str, name: str, bad_files: dict[str, Path]) -> None:
    result = CliRunner().invoke(cli, command(kind, bad_files[name]))
    assert_one_line_error(result, *BAD_FILES[name][1])


@needs_ask
def test_preflight_refusal_and_force(smollm2_path: Path) -> None:
    runner = CliRunner()
    refused = runner.invoke(cli, command("ask", smollm2_path), env={"RT_MEMORY_LIMIT": "200M"})
    assert_one_line_error(refused, "needs 212.4 MB (weights 96.6 MB, f16 KV cache 94.4 MB for --ctx 4096",
                          "200.0 MB available (RT_MEMORY_LIMIT)", "--ctx 2048", "--kv-type q8_0",
                          "--force skips this check")
    assert refused.exit_code == 1

    forced = runner.invoke(cli, command("ask", smollm2_path, "--force"), env={"RT_MEMORY_LIMIT": "200M"})
    assert forced.exit_code == 0, forced.output
    assert "Paris" in forced.stdout


def test_bad_memory_limit_setting(smollm2_path: Path) -> None:
    result = CliRunner().invoke(cli, command("info", smollm2_path), env={"RT_MEMORY_LIMIT": "lots"})
    assert_one_line_error(result, "RT_MEMORY_LIMIT: 'lots' is not a size", "set it to a size such as 4G")


@needs_ask
def test_prompt_longer_than_the_context(smollm2_path: Path) -> None:
    question = "Tell me about Paris. " * 400  # ~2,000 tokens
    result = CliRunner().invoke(cli, ["ask", "--no-rag", "--model", str(smollm2_path), "--ctx", "512", question])
    assert_one_line_error(result, "512")
