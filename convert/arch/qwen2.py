"""Qwen2 / Qwen2.5: the Llama layout plus q/k/v biases, NeoX-style rotary (no permutation)."""

from __future__ import annotations

import gguf

from convert.arch import register
from convert.arch.base import Architecture


@register("Qwen2ForCausalLM")
class Qwen2(Architecture):
    """Qwen2 and Qwen2.5 dense models: GGUF architecture ``qwen2``.

    The bias tensors share their weight's table entry (``.bias`` suffix), and llama.cpp's
    ``qwen2`` rotates half-split pairs like transformers, so tensors are copied unchanged.
    """

    gguf_arch = gguf.MODEL_ARCH.QWEN2
