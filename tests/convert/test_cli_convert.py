"""``rt convert`` through Click's runner: embedded install, --hf from a local hub, --out, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from runtime.cli import cli
from runtime.models.registry import Registry, sha256_file
from tests.hubserver import GGUF_FILE, GGUF_REPO, HubServer


def rt(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_convert_without_source_installs_the_embedded_model(smollm2_path: Path) -> None:
    result = rt("convert")
    assert result.exit_code == 0, result.output
    assert "smollm2-135m-instruct" in result.stdout
    assert f"sha256        {sha256_file(smollm2_path)}" in result.stdout
    assert "Q4_1" in result.stdout and "98.4 MB" in result.stdout
    assert [e.name for e in Registry().entries()] == ["smollm2-135m-instruct"]


def test_convert_hf_downloads_registers_and_can_become_default(gguf_repo: HubServer, smollm2_path: Path) -> None:
    assert rt("convert").exit_code == 0
    result = rt("convert", "--hf", GGUF_REPO, "--quant", "q4_k_m", "--default", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "smollm2-135m-instruct-q4_k_m" and data["registered"]
    assert data["sha256"] == sha256_file(smollm2_path)
    assert data["source"].startswith(f"hf:{GGUF_REPO}/{GGUF_FILE}@")
    registry = Registry()
    assert registry.default_name == "smollm2-135m-instruct-q4_k_m"
    assert Path(data["path"]) == registry.root / "smollm2-135m-instruct-q4_k_m.gguf"


def test_convert_hf_missing_quant_lists_the_existing_ones(gguf_repo: HubServer) -> None:
    result = rt("convert", "--hf", GGUF_REPO, "--quant", "Q5_K_M")
    assert result.exit_code == 1
    assert f"rt: error: {GGUF_REPO} has no Q5_K_M GGUF; it has: Q4_K_M, Q8_0; try --quant Q4_K_M" in result.stderr
    assert Registry().entries() == []


@pytest.mark.slow
def test_convert_hf_checksum_mismatch_registers_nothing(gguf_repo: HubServer) -> None:
    gguf_repo.repos[GGUF_REPO].reported_sha256[GGUF_FILE] = "f" * 64
    result = rt("convert", "--hf", GGUF_REPO, "--name", "bad")
    assert result.exit_code == 1
    assert "failed verification" in result.stderr and "the download was deleted" in result.stderr
    assert Registry().entries() == []
    assert not list(Registry().root.glob("*.gguf")) and not list(Registry().root.glob(".*part"))


@pytest.mark.slow
def test_convert_hf_out_writes_a_file_and_registers_nothing(
    gguf_repo: HubServer,
    smollm2_path: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "elsewhere" / "mine.gguf"
    result = rt("convert", "--hf", GGUF_REPO, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "not registered" in result.stdout
    assert sha256_file(out) == sha256_file(smollm2_path)
    assert Registry().entries() == []


def test_convert_hf_unknown_repo(hub: HubServer) -> None:
    result = rt("convert", "--hf", "nobody/nothing-GGUF")
    assert result.exit_code == 1
    assert f"nobody/nothing-GGUF was not found on {hub.url} (HTTP 404)" in result.stderr


def test_convert_refuses_two_sources_and_bad_out() -> None:
    result = rt("convert", "--hf", "a/b", "--from", "c/d")
    assert result.exit_code == 1 and "--hf and --from name two sources" in result.stderr
    result = rt("convert", "--out", "model.bin")
    assert result.exit_code == 1 and "should end in .gguf" in result.stderr
    result = rt("convert", "--quant", "Q8_0")
    assert result.exit_code == 1 and "--quant needs --hf or --from" in result.stderr


def test_convert_from_pickle_only_repo_is_refused(hub: HubServer) -> None:
    hub.add_repo("old/gpt", {"pytorch_model.bin": b"pickle", "config.json": b"{}"})
    result = rt("convert", "--from", "old/gpt")
    assert result.exit_code == 1
    assert "old/gpt has only pickle weights (pytorch_model.bin)" in result.stderr


def test_convert_from_rejects_a_quant_it_cannot_make(tmp_path: Path) -> None:
    result = rt("convert", "--from", str(tmp_path), "--quant", "IQ2_XS")
    assert result.exit_code == 1
    assert "cannot convert to IQ2_XS" in result.stderr and "Q4_K_M" in result.stderr


def test_convert_from_neither_folder_nor_repo(tmp_path: Path) -> None:
    result = rt("convert", "--from", str(tmp_path / "missing"))
    assert result.exit_code == 1 and "neither a checkpoint folder nor a hub repo id" in result.stderr


def test_convert_from_local_folder_registers_the_gguf(tiny_llama: Path) -> None:
    result = rt("convert", "--from", str(tiny_llama), "--quant", "BF16", "--name", "tiny-llama")
    assert result.exit_code == 0, result.output
    (entry,) = Registry().entries()
    assert (entry.name, entry.architecture, entry.quantization) == ("tiny-llama", "llama", "BF16")
    assert entry.source == f"local:{tiny_llama.resolve()}"
    assert entry.sha256 == sha256_file(Registry().root / "tiny-llama.gguf")


def test_convert_from_hub_repo_downloads_then_converts(hub: HubServer, tiny_llama: Path) -> None:
    files: dict[str, bytes | Path] = {p.name: p for p in tiny_llama.iterdir() if p.is_file()}
    hub.add_repo("tester/Tiny-Llama", files | {"pytorch_model.bin": b"pickle", "README.md": b"x"})
    result = rt("convert", "--from", "tester/Tiny-Llama", "--quant", "BF16")
    assert result.exit_code == 0, result.output
    (entry,) = Registry().entries()
    assert entry.name == "tiny-llama-bf16" and entry.source.startswith("hf:tester/Tiny-Llama@")
    fetched = {r.path.rsplit("/", 1)[-1] for r in hub.requests if r.method == "GET" and "/resolve/" in r.path}
    assert "pytorch_model.bin" not in fetched and any(n.endswith(".safetensors") for n in fetched)
