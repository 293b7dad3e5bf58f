"""Every way a checkpoint can be unusable gets a clear error, and no output file."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from convert.pipeline import QUANT_TYPES, convert_checkpoint
from runtime import fsutil
from runtime.errors import (
    ConfigError,
    ConvertError,
    InsufficientDiskError,
    UnsupportedArchitectureError,
)
from runtime.models.safetensors import INDEX_NAME, Checkpoint, read_header


def _shards(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def _assert_no_output(folder: Path) -> None:
    assert not [p for p in folder.iterdir() if p.suffix == ".gguf" or p.name.startswith(fsutil.TMP_MARK)]


def test_tiny_llama_converts(tiny_llama: Path, tmp_path: Path) -> None:
    """The checkpoint the other tests break is itself fine (so they test what they claim)."""
    result = convert_checkpoint(tiny_llama, tmp_path / "out" / "tiny.gguf", "F16")
    assert result.path.is_file() and result.quantization == "F16"
    assert result.size == result.path.stat().st_size


def test_unknown_architecture(tiny_llama: Path, tmp_path: Path) -> None:
    config = json.loads((tiny_llama / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (tiny_llama / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedArchitectureError) as info:
        convert_checkpoint(tiny_llama, tmp_path / "x.gguf")
    message = str(info.value)
    assert "GPT2LMHeadModel" in message
    for supported in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"):
        assert supported in message
    _assert_no_output(tmp_path)


def test_pickle_only_checkpoint_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ConvertError) as info:
        convert_checkpoint(folder, tmp_path / "x.gguf")
    message = str(info.value)
    assert "pytorch_model.bin" in message
    assert "arbitrary code" in message and "loaded whole" in message
    assert "safe_serialization=True" in message and "GGUF" in message


def test_unknown_quant_type(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Q4_K_M"):
        convert_checkpoint(tiny_llama, tmp_path / "x.gguf", "Q7_X")
    assert {"F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M"} <= set(QUANT_TYPES)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda raw: raw[:5], "only 5 bytes"),
        (lambda raw: struct.pack("<Q", 10**12) + raw[8:], "exceeds the file size"),
        (lambda raw: raw[:8] + b"{not json" + raw[17:], "not valid JSON"),
        (lambda raw: raw.replace(b'"BF16"', b'"BF17"', 1), "unknown dtype 'BF17'"),
        (lambda raw: raw[: len(raw) - 100], "past the end"),
    ],
    ids=["tiny-file", "huge-header", "bad-json", "unknown-dtype", "truncated"],
)
def test_corrupt_safetensors_header(tiny_llama: Path, tmp_path: Path, damage, expected: str) -> None:
    shard = _shards(tiny_llama)[1]
    shard.write_bytes(damage(shard.read_bytes()))
    with pytest.raises(ConvertError, match=expected) as info:
        convert_checkpoint(tiny_llama, tmp_path / "x.gguf")
    assert shard.name in str(info.value)
    _assert_no_output(tmp_path)


def test_shapes_inconsistent_with_offsets(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 32]}}).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(64))
    with pytest.raises(ConvertError, match="spans 32 bytes, its shape needs 64"):
        read_header(path)


def test_missing_shard(tiny_llama: Path, tmp_path: Path) -> None:
    missing = _shards(tiny_llama)[1]
    missing.unlink()
    with pytest.raises(ConvertError) as info:
        convert_checkpoint(tiny_llama, tmp_path / "x.gguf")
    assert "1 of 2 shards" in str(info.value) and missing.name in str(info.value)


def test_index_does_not_match_shards(tiny_llama: Path) -> None:
    index = json.loads((tiny_llama / INDEX_NAME).read_text())
    first_shard = _shards(tiny_llama)[0].name
    index["weight_map"]["model.layers.7.mlp.up_proj.weight"] = first_shard
    (tiny_llama / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(ConvertError, match="does not match") as info:
        Checkpoint.open(tiny_llama)
    assert "model.layers.7.mlp.up_proj.weight" in str(info.value)


def test_checkpoint_missing_a_layer(tiny_llama: Path, tmp_path: Path) -> None:
    config = json.loads((tiny_llama / "config.json").read_text())
    config["num_hidden_layers"] = 3  # the shards hold 2
    (tiny_llama / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConvertError, match="lacks 9 of the 29 tensors"):
        convert_checkpoint(tiny_llama, tmp_path / "x.gguf")


def test_insufficient_disk_space(tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "free_space", lambda folder: 1000)
    with pytest.raises(InsufficientDiskError) as info:
        convert_checkpoint(tiny_llama, tmp_path / "x.gguf", "Q4_K_M", direct=False)
    message = str(info.value)
    assert "intermediate" in message and "1.0 KB is free" in message
    assert info.value.available == 1000 and info.value.needed > 100_000
    _assert_no_output(tmp_path)


def test_missing_config_and_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConvertError, match="not a folder"):
        convert_checkpoint(tmp_path / "nowhere", tmp_path / "x.gguf")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConvertError, match="no config.json"):
        convert_checkpoint(tmp_path / "empty", tmp_path / "x.gguf")


def test_corrupt_tokenizer_json(tiny_llama: Path, tmp_path: Path) -> None:
    tokenizer = tiny_llama / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes()[:1000])  # a truncated download
    with pytest.raises(ConvertError, match="tokenizer.json in .* is not valid JSON"):
        convert_checkpoint(tiny_llama, tmp_path / "x.gguf", "F16")
    _assert_no_output(tmp_path)


def test_tokenizer_json_the_tokenizers_library_rejects(tiny_llama: Path, tmp_path: Path) -> None:
    tokenizer = tiny_llama / "tokenizer.json"
    data = json.loads(tokenizer.read_text(encoding="utf-8"))
    data["model"]["merges"].append(["zzq", "qqz"])  # valid JSON, but a merge of unknown tokens
    tokenizer.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConvertError, match=r"tokenizer\.json cannot be loaded .*out of vocabulary"):
        convert_checkpoint(tiny_llama, tmp_path / "x.gguf", "F16")
    _assert_no_output(tmp_path)
