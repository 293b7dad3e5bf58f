"""``rt info`` through the real CLI group."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from runtime.cli import cli
from runtime.models.registry import ModelEntry, Registry
from tests.runtime.bad_gguf import write_tiny_gguf


def run(*args: str, **env: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["info", *args], env=env or None)


def test_default_model_is_smollm2() -> None:
    result = run()
    assert result.exit_code == 0, result.output
    out = result.stdout
    for line in ("architecture          llama", "parameters            135M (134,515,008)",
                 "quantization          Q4_1", "trained context       8192 tokens",
                 "layers                30 (9 attention heads, 3 KV heads, head size 64)",
                 "chat template         yes", "fits                  yes"):
        assert line in out
    assert "memory at --ctx 4096  212.4 MB (weights 96.6 MB, KV cache 94.4 MB, compute 21.5 MB; f16 KV)" in out
    assert "file size             98.4 MB" in out


def test_gemma_json(gemma_path: Path) -> None:
    result = run(str(gemma_path), "--ctx", "8192", "--kv-type", "q8_0", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["architecture"], data["quantization"]) == ("gemma3", "Q4_K_M")
    assert (data["n_ctx"], data["kv_type"]) == (8192, "q8_0")
    assert 260e6 < data["n_params"] < 280e6 and data["has_chat_template"] is False
    assert data["memory"]["kv_cache"] == 18 * 8192 * 2 * (256 // 32 * 34)  # 18 layers, 1 KV head, K+V
    assert data["metadata"]["gemma3.attention.sliding_window"] == 512
    assert data["metadata"]["tokenizer.ggml.tokens"] == {"array": "string", "length": 262144}


def test_does_not_fit(smollm2_path: Path) -> None:
    result = run(str(smollm2_path), RT_MEMORY_LIMIT="200M")
    assert result.exit_code == 0  # info reports; only loading refuses
    assert "available             200.0 MB (RT_MEMORY_LIMIT)" in result.stdout
    assert "fits                  no: loading would be refused; try --ctx 2048, --kv-type q8_0" in result.stdout


def test_beyond_trained_context(smollm2_path: Path) -> None:
    result = run(str(smollm2_path), "--ctx", "16384")
    assert "memory at --ctx 8192" in result.stdout
    assert "--ctx 16384 is beyond the trained context; loading caps it to 8192" in result.stdout


def test_registry_name(tmp_path: Path) -> None:
    registry = Registry()
    registry.root.mkdir(parents=True)
    write_tiny_gguf(registry.root / "tiny.gguf")
    registry.add(ModelEntry(name="tiny", file="tiny.gguf"))
    result = run("tiny")
    assert result.exit_code == 0, result.output
    assert re.search(r"^name +tiny llama$", result.stdout, re.MULTILINE)


def test_bad_option() -> None:
    result = run("--kv-type", "q3")
    assert result.exit_code == 2 and "'q3' is not one of 'f16', 'q8_0'" in result.output


def test_imports_neither_llama_cpp_nor_torch(tmp_path: Path) -> None:
    """rt info must stay instant and must not touch the native library a bad file could crash."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from runtime.cli import cli\n"
        "result = CliRunner().invoke(cli, ['info'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('llama_cpp', 'torch', 'sentence_transformers', 'faiss') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_repack_tradeoff_shows_this_models_memory_and_the_measured_speeds(smollm2_path: Path) -> None:
    from runtime.models.repack import MEASURED

    out = run(str(smollm2_path)).stdout
    line = next(row for row in out.splitlines() if row.startswith("--repack"))
    assert "+96.6 MB memory at most" in line  # SmolLM2's tensor data: a second copy, from this file
    assert f"generation {MEASURED.generation:.2f}x, prompt processing {MEASURED.prompt:.2f}x" in line
    assert MEASURED.source in line and "Q4_1 may repack less or not at all" in line
    data = json.loads(run(str(smollm2_path), "--json").stdout)
    assert data["repack"]["extra_memory"] == data["memory"]["weights"]
    assert data["repack"]["measured"]["generation_ratio"] == MEASURED.generation
