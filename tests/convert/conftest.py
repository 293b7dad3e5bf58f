"""Checkpoints for the conversion tests: SmolLM2 exported from its GGUF, and tiny models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import cached_folder
from tests.convert import tiny_models
from tests.convert.export_hf import export_smollm2

# Bump when the export changes, so a stale cache is not reused.
_SMOLLM2_EXPORT = "smollm2-hf-bf16-3shards-v1"


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_path: Path) -> Path:
    """SmolLM2-135M-Instruct as a 3-shard bf16 HF checkpoint, cached across sessions."""
    return cached_folder(_SMOLLM2_EXPORT, lambda folder: (folder / "config.json").exists(),
                         lambda scratch: export_smollm2(smollm2_path, scratch, n_shards=3, dtype="bf16"))


@pytest.fixture(scope="session")
def tiny_mistral_spm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random MistralForCausalLM (f16) with a SentencePiece tokenizer.model."""
    return tiny_models.mistral_spm(tmp_path_factory.mktemp("mistral-spm"))


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2ForCausalLM (f32, random q/k/v biases) with a byte-level BPE."""
    return tiny_models.qwen2_bpe(tmp_path_factory.mktemp("qwen2"))


@pytest.fixture()
def tiny_llama(tmp_path: Path) -> Path:
    """A 2-layer random bf16 LlamaForCausalLM in 2 shards, for error and crash tests."""
    return tiny_models.llama_bpe(tmp_path / "tiny-llama")


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MB filesystem (tmpfs) to fill up; skipped where mounting is not allowed (not root)."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root on Linux")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill_disk(folder: Path, leave: int) -> Path:
    """Write a ballast file so that only about ``leave`` bytes stay free on ``folder``'s disk."""
    ballast = folder / "ballast"
    with open(ballast, "wb") as fh:
        fh.truncate(0)
        size = max(shutil.disk_usage(folder).free - leave, 0)
        fh.write(b"\0" * size)  # written, not sparse: tmpfs counts what is written
    return ballast
