"""What every architecture converter provides, and the parts Llama-like models share.

An architecture maps HF tensor names to GGUF names through a data table (HF name pattern with
``{bid}`` for the block number -> ``gguf.MODEL_TENSOR``), may transform a tensor's values
(Llama's rotary permutation), writes its hyperparameters, and may add generated tensors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gguf
import numpy as np

from runtime.errors import ConvertError

_SUFFIXES = (".weight", ".bias")

# The decoder-only layout that Llama, Mistral and Qwen2 share in transformers.
LLAMA_LIKE_TENSORS: Mapping[str, gguf.MODEL_TENSOR] = {
    "model.embed_tokens": gguf.MODEL_TENSOR.TOKEN_EMBD,
    "model.norm": gguf.MODEL_TENSOR.OUTPUT_NORM,
    "lm_head": gguf.MODEL_TENSOR.OUTPUT,
    "model.layers.{bid}.input_layernorm": gguf.MODEL_TENSOR.ATTN_NORM,
    "model.layers.{bid}.self_attn.q_proj": gguf.MODEL_TENSOR.ATTN_Q,
    "model.layers.{bid}.self_attn.k_proj": gguf.MODEL_TENSOR.ATTN_K,
    "model.layers.{bid}.self_attn.v_proj": gguf.MODEL_TENSOR.ATTN_V,
    "model.layers.{bid}.self_attn.o_proj": gguf.MODEL_TENSOR.ATTN_OUT,
    "model.layers.{bid}.post_attention_layernorm": gguf.MODEL_TENSOR.FFN_NORM,
    "model.layers.{bid}.mlp.gate_proj": gguf.MODEL_TENSOR.FFN_GATE,
    "model.layers.{bid}.mlp.up_proj": gguf.MODEL_TENSOR.FFN_UP,
    "model.layers.{bid}.mlp.down_proj": gguf.MODEL_TENSOR.FFN_DOWN,
}
# Buffers some exports carry that are recomputed at load time.
LLAMA_LIKE_IGNORED = (r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq",)


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(re.escape(pattern).replace(re.escape("{bid}"), r"(?P<bid>\d+)"))


class Architecture:
    """Base converter for one HF architecture; subclasses set the class variables."""

    gguf_arch: ClassVar[gguf.MODEL_ARCH]
    tensor_table: ClassVar[Mapping[str, gguf.MODEL_TENSOR]] = LLAMA_LIKE_TENSORS
    ignored: ClassVar[Sequence[str]] = LLAMA_LIKE_IGNORED

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self._patterns = [(_compile(p), t) for p, t in self.tensor_table.items()]
        self._ignored = [re.compile(p) for p in self.ignored]

    @property
    def gguf_arch_name(self) -> str:
        return gguf.MODEL_ARCH_NAMES[self.gguf_arch]

    def _get(self, key: str, default: Any = None) -> Any:
        value = self.config.get(key, default)
        if value is None:
            raise ConvertError(f"config.json lacks {key!r}, needed for {self.gguf_arch_name}")
        return value

    @property
    def n_head(self) -> int:
        return int(self._get("num_attention_heads"))

    @property
    def n_head_kv(self) -> int:
        return int(self.config.get("num_key_value_heads") or self.n_head)

    @property
    def head_dim(self) -> int:
        return int(self.config.get("head_dim") or self._get("hidden_size") // self.n_head)

    @property
    def rope_theta(self) -> float:
        """Rotary base: ``rope_theta``, or inside ``rope_parameters`` (transformers >= 5)."""
        params = self.config.get("rope_parameters") or {}
        return float(self.config.get("rope_theta") or params.get("rope_theta") or 10000.0)

    @property
    def rope_scaling(self) -> Mapping[str, Any]:
        """Context-extension settings: ``rope_scaling``, or a non-default ``rope_parameters``."""
        params = self.config.get("rope_parameters") or {}
        if self.config.get("rope_scaling"):
            return dict(self.config["rope_scaling"])
        return params if params.get("rope_type") not in (None, "default") else {}

    @property
    def rope_scaling_kind(self) -> str | None:
        return self.rope_scaling.get("rope_type") or self.rope_scaling.get("type")

    def gguf_name(self, hf_name: str) -> str | None:
        """The GGUF name for ``hf_name``; None for tensors to skip; ConvertError if unknown."""
        if any(p.fullmatch(hf_name) for p in self._ignored):
            return None
        stem, suffix = hf_name, ""
        for candidate in _SUFFIXES:
            if hf_name.endswith(candidate):
                stem, suffix = hf_name[: -len(candidate)], candidate
        for pattern, tensor in self._patterns:
            match = pattern.fullmatch(stem)
            if match:
                bid = match.groupdict().get("bid")
                return gguf.TENSOR_NAMES[tensor].format(bid=bid) + suffix
        raise ConvertError(
            f"tensor {hf_name!r} has no GGUF counterpart in rt's {self.gguf_arch_name} converter",
            hint="this checkpoint's layout differs from the standard one for its architecture",
        )

    def transforms(self, gguf_name: str) -> bool:
        """Whether :meth:`transform` changes this tensor (else it is copied byte for byte)."""
        return False

    def transform(self, gguf_name: str, array: np.ndarray) -> np.ndarray:
        """Rearrange a tensor's values as llama.cpp expects; the default keeps them."""
        return array

    def extra_tensors(self) -> list[tuple[str, np.ndarray]]:
        """Tensors computed from the config rather than read from the checkpoint."""
        return []

    def add_metadata(self, writer: gguf.GGUFWriter, n_vocab: int) -> None:
        """Write the hyperparameters llama.cpp reads for this architecture."""
        writer.add_context_length(int(self._get("max_position_embeddings")))
        writer.add_embedding_length(int(self._get("hidden_size")))
        writer.add_block_count(int(self._get("num_hidden_layers")))
        writer.add_feed_forward_length(int(self._get("intermediate_size")))
        writer.add_head_count(self.n_head)
        writer.add_head_count_kv(self.n_head_kv)
        writer.add_rope_freq_base(self.rope_theta)
        writer.add_layer_norm_rms_eps(float(self.config.get("rms_norm_eps") or 1e-6))
        writer.add_vocab_size(n_vocab)
        writer.add_rope_dimension_count(self.head_dim)
        if self.head_dim * self.n_head != int(self._get("hidden_size")):
            writer.add_key_length(self.head_dim)
            writer.add_value_length(self.head_dim)
        self.add_rope_scaling(writer)

    def add_rope_scaling(self, writer: gguf.GGUFWriter) -> None:
        """Linear and YaRN context extension, as config.json's ``rope_scaling`` says."""
        scaling, kind = self.rope_scaling, self.rope_scaling_kind
        if kind in (None, "default"):
            return
        factor = float(scaling.get("factor") or 1.0)
        if kind == "linear":
            writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(factor)
        elif kind == "yarn":
            writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            writer.add_rope_scaling_factor(factor)
            original = scaling.get("original_max_position_embeddings")
            if original:
                writer.add_rope_scaling_orig_ctx_len(int(original))
        else:
            raise ConvertError(f"rope_scaling type {kind!r} is not supported for {self.gguf_arch_name}")
