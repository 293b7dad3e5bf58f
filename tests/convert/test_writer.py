"""The streaming writer's byte-level promises: bf16 copied as is, types, layouts."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from convert.arch.llama import interleave_rotary, llama3_rope_factors, split_rotary
from convert.pipeline import convert_checkpoint
from convert.writer import bf16_to_f32, f32_to_bf16
from runtime.models.safetensors import Checkpoint, open_tensor


def _tensors(path: Path) -> dict[str, gguf.ReaderTensor]:
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def test_bf16_to_bf16_is_a_byte_copy(tiny_llama: Path, tmp_path: Path) -> None:
    result = convert_checkpoint(tiny_llama, tmp_path / "tiny.gguf", "BF16")
    tensors = _tensors(result.path)
    checkpoint = Checkpoint.open(tiny_llama)
    with open_tensor(checkpoint["model.layers.1.mlp.down_proj.weight"]) as source:
        assert tensors["blk.1.ffn_down.weight"].tensor_type == gguf.GGMLQuantizationType.BF16
        assert bytes(tensors["blk.1.ffn_down.weight"].data) == source.tobytes()
    with open_tensor(checkpoint["model.layers.0.self_attn.k_proj.weight"]) as source:
        expected = interleave_rotary(source, n_head=2).tobytes()  # permuted, still bit-exact
        assert bytes(tensors["blk.0.attn_k.weight"].data) == expected
    norm = tensors["blk.0.attn_norm.weight"]
    assert norm.tensor_type == gguf.GGMLQuantizationType.F32  # 1-D tensors stay F32
    with open_tensor(checkpoint["model.layers.0.input_layernorm.weight"]) as source:
        np.testing.assert_array_equal(np.asarray(norm.data), bf16_to_f32(source))


@pytest.mark.parametrize("quant", ["F32", "F16"])
def test_float_outputs_hold_the_same_values(tiny_llama: Path, tmp_path: Path, quant: str) -> None:
    result = convert_checkpoint(tiny_llama, tmp_path / "tiny.gguf", quant)
    tensor = _tensors(result.path)["blk.0.ffn_up.weight"]
    assert tensor.tensor_type.name == quant
    with open_tensor(Checkpoint.open(tiny_llama)["model.layers.0.mlp.up_proj.weight"]) as source:
        expected = bf16_to_f32(source)
    np.testing.assert_array_equal(np.asarray(tensor.data, dtype=np.float32), expected)  # bf16 fits f16 here


def test_f32_to_bf16_rounds_like_torch() -> None:
    import torch

    values = np.concatenate([
        np.random.default_rng(0).standard_normal(10_000).astype(np.float32) * 100,
        np.array([0.0, -0.0, 1.0, np.inf, -np.inf, 3.3895314e38, 1e-40, 1.00390625, 1.01171875],
                 dtype=np.float32),
    ])
    expected = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(f32_to_bf16(values), expected)
    assert np.isnan(bf16_to_f32(f32_to_bf16(np.array([np.nan], dtype=np.float32)))).all()


def test_rotary_permutation_round_trips() -> None:
    weight = np.arange(8 * 64 * 3, dtype=np.float32).reshape(8 * 64, 3)
    permuted = interleave_rotary(weight, n_head=8)
    assert not np.array_equal(permuted, weight)
    np.testing.assert_array_equal(split_rotary(permuted, n_head=8), weight)
    # Within a head, the first half's row i moves to 2i and the second half's to 2i + 1.
    np.testing.assert_array_equal(permuted[[0, 1, 2, 3], 0], weight[[0, 32, 1, 33], 0])


def test_llama3_rope_factors_match_transformers() -> None:
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import _compute_llama3_parameters

    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    config = LlamaConfig(hidden_size=4096, num_attention_heads=32, rope_theta=500000.0,  # type: ignore[call-arg]
                         rope_scaling=scaling, max_position_embeddings=131072)
    inv_freq, _ = _compute_llama3_parameters(config)
    base_inv_freq = 1.0 / (500000.0 ** (np.arange(0, 128, 2) / 128))
    expected = (base_inv_freq / inv_freq.double().numpy()).astype(np.float32)
    np.testing.assert_allclose(llama3_rope_factors(scaling, 500000.0, 128), expected, rtol=1e-5)


@pytest.mark.parametrize("mode", ["cross-device", "unavailable"])
def test_byte_copy_without_kernel_copy(tiny_llama: Path, tmp_path: Path, monkeypatch, mode: str) -> None:
    """Where copy_file_range fails (another filesystem) or is absent (Windows): a buffered copy."""
    import errno
    import os

    if mode == "unavailable":
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    else:
        def cross_device(*args: object) -> int:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        monkeypatch.setattr(os, "copy_file_range", cross_device)
    result = convert_checkpoint(tiny_llama, tmp_path / "tiny.gguf", "BF16")
    tensor = _tensors(result.path)["blk.1.ffn_down.weight"]
    with open_tensor(Checkpoint.open(tiny_llama)["model.layers.1.mlp.down_proj.weight"]) as source:
        assert bytes(tensor.data) == source.tobytes()
