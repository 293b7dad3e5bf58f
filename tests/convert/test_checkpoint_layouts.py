"""Checkpoint layouts and tokenizer kinds beyond the golden path."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import gguf
import pytest

from convert.pipeline import convert_checkpoint
from convert.pretokenizer import pre_tokenizer_by_structure
from runtime.errors import ConvertError
from runtime.models.safetensors import INDEX_NAME, Checkpoint


def _single_file(folder: Path) -> None:
    """Merge nothing: just drop the index and keep the shards (HF allows unindexed shards)."""
    (folder / INDEX_NAME).unlink()


def test_shards_without_index_and_consolidated_file(tiny_llama: Path, tmp_path: Path) -> None:
    _single_file(tiny_llama)
    # Mistral repos ship consolidated.safetensors beside the HF shards: it must be ignored.
    shutil.copy(next(tiny_llama.glob("model-00001*")), tiny_llama / "consolidated.safetensors")
    checkpoint = Checkpoint.open(tiny_llama)
    assert all(ref.path.name.startswith("model-") for ref in checkpoint.tensors.values())
    result = convert_checkpoint(tiny_llama, tmp_path / "tiny.gguf", "F16")
    assert result.n_params == sum(r.n_elements for r in checkpoint.tensors.values())


def test_duplicate_tensor_across_unindexed_files(tiny_llama: Path) -> None:
    _single_file(tiny_llama)
    shutil.copy(next(tiny_llama.glob("model-00001*")), tiny_llama / "extra.safetensors")
    with pytest.raises(ConvertError, match="appears in both"):
        Checkpoint.open(tiny_llama)


def test_llama3_style_pre_tokenizer_and_progress(tiny_llama: Path, tmp_path: Path, capsys) -> None:
    result = convert_checkpoint(tiny_llama, tmp_path / "tiny.gguf", "Q8_0", name="Tiny Llama", progress=True)
    reader = gguf.GGUFReader(result.path)
    assert reader.fields["tokenizer.ggml.pre"].contents() == "llama-bpe"  # recognised by its regex
    assert reader.fields["general.name"].contents() == "Tiny Llama"
    assert reader.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q8_0
    err = capsys.readouterr().err
    assert "converting" in err and "quantizing to Q8_0" in err


def test_unknown_pre_tokenizer_falls_back_to_default(tiny_llama: Path, tmp_path: Path, caplog) -> None:
    data = json.loads((tiny_llama / "tokenizer.json").read_text())
    data["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\w+|\s+"
    (tiny_llama / "tokenizer.json").write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        result = convert_checkpoint(tiny_llama, tmp_path / "tiny.gguf", "F16")
    assert gguf.GGUFReader(result.path).fields["tokenizer.ggml.pre"].contents() == "default"
    assert "not one llama.cpp knows" in caplog.text


def test_pre_tokenizer_structures() -> None:
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    assert pre_tokenizer_by_structure({"pre_tokenizer": byte_level}) == "gpt-2"
    smollm = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]}
    assert pre_tokenizer_by_structure({"pre_tokenizer": smollm}) == "smollm"
    assert pre_tokenizer_by_structure({"pre_tokenizer": None}) is None


def test_unsupported_tokenizer_kinds(tiny_llama: Path, tmp_path: Path) -> None:
    data = json.loads((tiny_llama / "tokenizer.json").read_text())
    data["model"]["type"] = "WordPiece"
    (tiny_llama / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(ConvertError, match="WordPiece tokenizer"):
        convert_checkpoint(tiny_llama, tmp_path / "tiny.gguf", "F16")
    (tiny_llama / "tokenizer.json").unlink()
    with pytest.raises(ConvertError, match="no tokenizer.json or tokenizer.model"):
        convert_checkpoint(tiny_llama, tmp_path / "tiny.gguf", "F16")
    assert not list(tmp_path.glob("*.gguf"))
