"""Which ggml type each tensor gets for a quantized file type, as llama.cpp's quantizer chooses.

The rules below restate, as data, the tensor-type mixture of ``llama_tensor_get_type`` and its
helpers in llama.cpp's ``src/llama-quant.cpp`` (the version vendored by llama-cpp-python
0.3.36), for the file types rt writes and the dense decoder architectures it converts (no
Falcon, no mixture of experts, no importance matrix). Following them, the direct path writes the
same types as ``llama_model_quantize`` would; tests/convert/test_direct_quant.py checks the
result byte for byte against it.

Tensors are visited in llama.cpp's order (``llama_order``): tensors outside the blocks first,
then block by block, by name within each. The per-layer rules count attn_v and ffn_down
tensors in that order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import gguf

Q = gguf.GGMLQuantizationType

# The default ggml type of each file type (its llama_ftype number: convert/quantize.py).
DEFAULT_TYPES: Mapping[str, gguf.GGMLQuantizationType] = {
    "Q8_0": Q.Q8_0, "Q6_K": Q.Q6_K, "Q5_K_M": Q.Q5_K, "Q5_K_S": Q.Q5_K, "Q4_K_M": Q.Q4_K,
    "Q4_K_S": Q.Q4_K, "Q4_0": Q.Q4_0, "Q3_K_M": Q.Q3_K, "Q2_K": Q.Q2_K,
}

# Tensor categories, first match wins: (how the name is matched, text, category).
CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("equals", "output.weight", "output"),
    ("equals", "token_embd.weight", "token_embd"),
    ("contains", "attn_v.weight", "attn_v"),
    ("contains", "attn_k.weight", "attn_k"),
    ("contains", "attn_q.weight", "attn_q"),
    ("contains", "attn_output.weight", "attn_output"),
    ("contains", "ffn_up", "ffn_up"),
    ("contains", "ffn_gate", "ffn_gate"),
    ("contains", "ffn_down", "ffn_down"),
)

# Name parts that keep a 2-D+ tensor unquantized (llama.cpp's tensor_allows_quantization, the
# parts that can occur in dense decoders); only names ending in "weight" are quantized at all.
NOT_QUANTIZED: tuple[str, ...] = (
    "_norm.weight", "ffn_gate_inp.weight", "position_embd", "token_types.weight",
    "ssm_conv1d", "attn_rel_b.weight", "altup", "laurel", "per_layer_model_proj",
)

# The mixture: (category, file types, condition, type). For a tensor, the first row whose
# category and file type match decides, if its condition holds; a later row of the same
# category and file type is tried only when an earlier one's condition failed (llama.cpp's
# else-if chain). No matching row: the file type's default type. Conditions:
#   always        -
#   gqa_ge_4      n_head / n_head_kv >= 4
#   index_lt_2    fewer than 2 (4) tensors of this category came before
#   index_lt_4
#   first_16th    layer index < n_layer/16 (integer division), first_8th likewise
#   more_bits     layer in the first 1/8, the last 1/8, or every third one between
#                 (llama.cpp's use_more_bits: i < n/8 or i >= 7n/8 or (i - n/8) % 3 == 2)
# attn_v counts attn_v tensors (index among them, n = their number); ffn_down uses its running
# index as the layer and n_layer as n.
MIXTURE: tuple[tuple[str, tuple[str, ...], str, gguf.GGMLQuantizationType], ...] = (
    ("attn_v", ("Q2_K",), "gqa_ge_4", Q.Q4_K),
    ("attn_v", ("Q2_K",), "always", Q.Q3_K),
    ("attn_v", ("Q3_K_M",), "index_lt_2", Q.Q5_K),
    ("attn_v", ("Q3_K_M",), "always", Q.Q4_K),
    ("attn_v", ("Q4_K_M", "Q5_K_M"), "more_bits", Q.Q6_K),
    ("attn_v", ("Q4_K_S",), "index_lt_4", Q.Q5_K),
    ("ffn_down", ("Q2_K",), "always", Q.Q3_K),
    ("ffn_down", ("Q3_K_M",), "first_16th", Q.Q5_K),
    ("ffn_down", ("Q3_K_M",), "always", Q.Q4_K),
    ("ffn_down", ("Q4_K_M", "Q5_K_M"), "more_bits", Q.Q6_K),
    ("ffn_down", ("Q4_K_S",), "first_8th", Q.Q5_K),
    ("attn_output", ("Q2_K",), "always", Q.Q3_K),
    ("attn_output", ("Q3_K_M",), "always", Q.Q4_K),
)

# 70B-class models (8 query heads per attn_v head) get attn_v one step up: these types -> Q5_K.
BUMP_70B: tuple[gguf.GGMLQuantizationType, ...] = (Q.Q3_K, Q.Q4_K)
# Layer counts llama.cpp classes as 70B, per architecture (llama: only with grouped KV heads).
LAYERS_70B: Mapping[str, int] = {"llama": 80, "qwen2": 80}

# output.weight (and token_embd.weight when the model ties them): Q6_K, except Q8_0 when the
# file type's default is Q8_0 or the rows do not split into the default type's blocks.
OUTPUT_TYPE = Q.Q6_K
OUTPUT_TYPE_FALLBACK = Q.Q8_0

# A row length the chosen type's block does not divide: the next type that takes it, and F16
# when that one cannot either.
BLOCK_FALLBACK: Mapping[gguf.GGMLQuantizationType, gguf.GGMLQuantizationType] = {
    Q.Q2_K: Q.Q4_0, Q.Q3_K: Q.Q4_0, Q.Q4_K: Q.Q5_0, Q.Q5_K: Q.Q5_1, Q.Q6_K: Q.Q8_0,
}
LAST_FALLBACK = Q.F16


@dataclass(frozen=True)
class ModelFacts:
    """The hyperparameters the rules read."""

    arch: str        # GGUF architecture name
    n_layer: int
    n_head: int
    n_head_kv: int

    @property
    def n_gqa(self) -> int:
        return self.n_head // max(self.n_head_kv, 1)

    @property
    def is_70b(self) -> bool:
        if self.n_layer != LAYERS_70B.get(self.arch):
            return False
        return self.arch != "llama" or self.n_head != self.n_head_kv


def llama_order(names: Iterable[str]) -> list[str]:
    """``names`` in the order llama.cpp's loader (and so its quantizer) lists tensors."""

    def key(name: str) -> tuple[int, str]:
        layer = -1
        if name.startswith("blk."):
            digits = name[4:].partition(".")[0]
            layer = int(digits) if digits.isdigit() else -1
        return layer, name

    return sorted(names, key=key)


def category(name: str) -> str:
    for how, text, what in CATEGORIES:
        if (name == text) if how == "equals" else (text in name):
            return what
    return "other"


def is_quantized(name: str, shape: Sequence[int]) -> bool:
    """Whether llama.cpp quantizes this tensor at all (else it keeps its stored type)."""
    return len(shape) >= 2 and name.endswith("weight") and not any(p in name for p in NOT_QUANTIZED)


def _more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _holds(condition: str, index: int, count: int, facts: ModelFacts) -> bool:
    checks = {
        "always": lambda: True,
        "gqa_ge_4": lambda: facts.n_gqa >= 4,
        "index_lt_2": lambda: index < 2,
        "index_lt_4": lambda: index < 4,
        "first_16th": lambda: index < count // 16,
        "first_8th": lambda: index < count // 8,
        "more_bits": lambda: _more_bits(index, count),
    }
    return checks[condition]()


def _block_size(ggml_type: gguf.GGMLQuantizationType) -> int:
    return gguf.GGML_QUANT_SIZES[ggml_type][0]


def _fit_rows(ggml_type: gguf.GGMLQuantizationType, n_cols: int) -> gguf.GGMLQuantizationType:
    if n_cols % _block_size(ggml_type) == 0:
        return ggml_type
    fallback = BLOCK_FALLBACK.get(ggml_type, LAST_FALLBACK)
    return fallback if n_cols % _block_size(fallback) == 0 else LAST_FALLBACK


def choose_types(
    quant: str,
    tensors: Mapping[str, tuple[int, ...]],
    facts: ModelFacts,
    stored_type: gguf.GGMLQuantizationType,
) -> dict[str, gguf.GGMLQuantizationType]:
    """The ggml type of every tensor of a ``quant`` file (shapes in numpy order, rows first).

    Tensors the quantizer leaves alone get F32 when 1-D, else ``stored_type`` (the float type
    the two-step path's intermediate file holds them in).
    """
    default = DEFAULT_TYPES[quant]
    tied = "output.weight" not in tensors
    counters = {"attn_v": 0, "ffn_down": 0}
    totals = {"attn_v": sum(category(n) == "attn_v" for n in tensors), "ffn_down": facts.n_layer}
    chosen: dict[str, gguf.GGMLQuantizationType] = {}
    for name in llama_order(tensors):
        shape = tensors[name]
        if not is_quantized(name, shape):
            chosen[name] = Q.F32 if len(shape) <= 1 else stored_type
            continue
        what = category(name)
        n_cols = shape[-1]
        if what == "output" or (tied and what == "token_embd"):
            if n_cols % _block_size(default) or default == OUTPUT_TYPE_FALLBACK:
                new = OUTPUT_TYPE_FALLBACK
            else:
                new = OUTPUT_TYPE
        else:
            new = _mixture_type(quant, what, counters, totals, facts, default)
        chosen[name] = _fit_rows(new, n_cols)
    return chosen


def _mixture_type(quant: str, what: str, counters: dict[str, int], totals: dict[str, int],
                  facts: ModelFacts, default: gguf.GGMLQuantizationType) -> gguf.GGMLQuantizationType:
    new = default
    index, count = counters.get(what, 0), totals.get(what, 0)
    for rule_category, ftypes, condition, ggml_type in MIXTURE:
        if rule_category == what and quant in ftypes and _holds(condition, index, count, facts):
            new = ggml_type
            break
    if what == "attn_v" and facts.is_70b and new in BUMP_70B:
        new = Q.Q5_K
    if what in counters:
        counters[what] += 1
    return new
