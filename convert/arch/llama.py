"""Llama and Mistral: the Llama layout, with the rotary permutation of q and k.

transformers stores q_proj/k_proj with each head's rotary pairs split into two halves
(``rotate_half``); llama.cpp's ``llama`` architecture rotates adjacent pairs, the layout of
Meta's original checkpoints. Converting undoes the halving: within each head, rows
``[x0..x(d/2-1), y0..y(d/2-1)]`` become ``[x0, y0, x1, y1, ...]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gguf
import numpy as np

from convert.arch import register
from convert.arch.base import Architecture

_Q = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ATTN_Q]
_K = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ATTN_K]


def interleave_rotary(weight: np.ndarray, n_head: int) -> np.ndarray:
    """HF half-split rotary rows -> llama.cpp interleaved rows, head by head (any dtype)."""
    rows = weight.shape[0]
    halves = weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:])
    return np.ascontiguousarray(halves.swapaxes(1, 2)).reshape(weight.shape)


def split_rotary(weight: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of :func:`interleave_rotary` (llama.cpp layout -> HF layout)."""
    rows = weight.shape[0]
    pairs = weight.reshape(n_head, rows // n_head // 2, 2, *weight.shape[1:])
    return np.ascontiguousarray(pairs.swapaxes(1, 2)).reshape(weight.shape)


def llama3_rope_factors(scaling: Mapping[str, Any], base: float, head_dim: int) -> np.ndarray:
    """Per-frequency wavelength factors of Llama 3.1's ``rope_type: llama3`` scaling.

    Frequencies with wavelengths shorter than ``original_context / high_freq_factor`` keep
    their value, longer than ``original_context / low_freq_factor`` are divided by ``factor``,
    and those between are blended smoothly (Meta's reference ``apply_scaling``).
    """
    factor = float(scaling.get("factor", 8.0))
    low, high = float(scaling.get("low_freq_factor", 1.0)), float(scaling.get("high_freq_factor", 4.0))
    original = float(scaling.get("original_max_position_embeddings", 8192))
    factors = []
    for i in range(0, head_dim, 2):
        wavelength = 2 * math.pi * base ** (i / head_dim)
        if wavelength < original / high:
            factors.append(1.0)
        elif wavelength > original / low:
            factors.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            factors.append(1.0 / ((1.0 - smooth) / factor + smooth))
    return np.asarray(factors, dtype=np.float32)


@register("LlamaForCausalLM", "MistralForCausalLM")
class Llama(Architecture):
    """Llama 1/2/3, SmolLM, Mistral 7B: GGUF architecture ``llama``."""

    gguf_arch = gguf.MODEL_ARCH.LLAMA

    def _rotary_heads(self, gguf_name: str) -> int | None:
        """Head count to permute ``gguf_name`` with: q and k weights (and biases, if any)."""
        if not gguf_name.startswith("blk."):
            return None
        block, stem = gguf_name.split(".")[1], gguf_name.rsplit(".", 1)[0]
        if stem == _Q.format(bid=block):
            return self.n_head
        if stem == _K.format(bid=block):
            return self.n_head_kv
        return None

    def transforms(self, gguf_name: str) -> bool:
        return self._rotary_heads(gguf_name) is not None

    def transform(self, gguf_name: str, array: np.ndarray) -> np.ndarray:
        n_head = self._rotary_heads(gguf_name)
        return array if n_head is None else interleave_rotary(array, n_head)

    def add_rope_scaling(self, writer: gguf.GGUFWriter) -> None:
        if self.rope_scaling_kind == "llama3":
            return  # carried by the rope_freqs tensor instead
        super().add_rope_scaling(writer)

    def extra_tensors(self) -> list[tuple[str, np.ndarray]]:
        if self.rope_scaling_kind != "llama3":
            return []
        name = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"
        return [(name, llama3_rope_factors(self.rope_scaling, self.rope_theta, self.head_dim))]
