"""The tensor shapes llama.cpp's loader demands, checked before it sees the file.

llama.cpp creates each tensor it needs with the shape its architecture code computes from the
header's counts (``create_tensor(..., {n_embd, n_vocab})``) and refuses a file whose tensor has
another one ("check_tensor_dims: tensor 'token_embd.weight' has wrong shape"). ``rt info`` said
such a file was fine. The rules here are data: a tensor name pattern and its expected shape in
ggml order (row length first), as expressions of the header's counts. They cover the tensors of
the common decoder layout; an architecture not listed gets the checks every architecture shares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Architectures whose attention tensors are laid out as llama's (separate q/k/v/output, sized
# by head_count x key_length): llama.cpp builds them all with the same shapes.
LLAMA_LAYOUT = frozenset({"llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "granite", "smollm3"})
# Every architecture llama.cpp knows embeds tokens as {n_embd, n_vocab} except these, whose
# embedding width is another count (wavtokenizer-dec's features) or split per layer.
_OWN_EMBEDDING = frozenset({"wavtokenizer-dec", "gemma3n"})

_COMMON: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"token_embd\.weight", ("n_embd", "n_vocab")),
)
_LLAMA: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"output_norm\.weight", ("n_embd",)),
    (r"output\.weight", ("n_embd", "n_vocab")),
    (r"blk\.(\d+)\.attn_norm\.weight", ("n_embd",)),
    (r"blk\.(\d+)\.ffn_norm\.weight", ("n_embd",)),
    (r"blk\.(\d+)\.attn_q\.weight", ("n_embd", "n_head*head_k")),
    (r"blk\.(\d+)\.attn_k\.weight", ("n_embd", "n_head_kv*head_k")),
    (r"blk\.(\d+)\.attn_v\.weight", ("n_embd", "n_head_kv*head_v")),
    (r"blk\.(\d+)\.attn_output\.weight", ("n_head*head_k", "n_embd")),  # llama.cpp sizes wo by the k head
)
_MAX_DIMS = 4
_ATTENTION = re.compile(r"blk\.(\d+)\.attn_(q|qkv)\.weight")


def _at_layer(value: int | Sequence[int], index: int) -> int:
    if isinstance(value, int):
        return value
    return int(value[index]) if index < len(value) else 0


@dataclass(frozen=True)
class Counts:
    """The header's counts the shapes are computed from; per-layer ones as tuples (or one int).

    0 or None: unknown (the key is absent), and a shape using it is not checked.
    """

    n_embd: int
    n_vocab: int | None            # the token list's length
    n_head: int | Sequence[int]
    n_head_kv: int | Sequence[int]
    head_k: int | None             # {arch}.attention.key_length, else n_embd / n_head
    head_v: int | None

    def value(self, term: str, index: int) -> int | None:
        """``"n_head*head_k"`` for layer ``index``; None when a count is unknown."""
        product = 1
        for name in term.split("*"):
            if name in ("n_head", "n_head_kv"):
                count: int | None = _at_layer(getattr(self, name), index)
            elif name in ("head_k", "head_v"):
                count = getattr(self, name)
                if count is None:
                    n_head = _at_layer(self.n_head, index)
                    count = self.n_embd // n_head if n_head and self.n_embd else None
            else:
                count = getattr(self, name) or None
            if count is None:
                return None
            product *= count
        return product


def zero_head_count(head_count: int | Sequence[int], tensor_names: Sequence[str]) -> str | None:
    """A layer with attention tensors but ``head_count`` 0 there: llama.cpp sizes q as {n_embd, 0}
    and refuses the file. Return the first such tensor's name (hybrids use 0 for layers without
    attention, which have no such tensor)."""
    for name in tensor_names:
        match = _ATTENTION.fullmatch(name)
        if match and _at_layer(head_count, int(match.group(1))) == 0:
            return name
    return None


def shape_mismatch(arch: str, counts: Counts,
                   shapes: Mapping[str, tuple[int, ...]]) -> tuple[str, tuple[int, ...], tuple[int, ...]] | None:
    """The first tensor whose shape (ggml order) is not what llama.cpp expects for ``arch``:
    ``(name, expected, found)``, or None. Trailing 1s do not count, as in llama.cpp."""
    rules = (() if arch in _OWN_EMBEDDING else _COMMON) + (_LLAMA if arch in LLAMA_LAYOUT else ())
    compiled = [(re.compile(pattern), terms) for pattern, terms in rules]
    for name, shape in shapes.items():
        for pattern, terms in compiled:
            match = pattern.fullmatch(name)
            if match is None:
                continue
            index = int(match.group(1)) if match.groups() else 0
            expected = [counts.value(term, index) for term in terms]
            found = list(shape) + [1] * (_MAX_DIMS - len(shape))
            wanted = [got if want is None else want for want, got in zip(expected, found)]
            wanted += [1] * (_MAX_DIMS - len(wanted))
            if wanted != found:
                return name, tuple(wanted[: len(terms)]), tuple(shape)
    return None
