"""llama.cpp's model, context and batch as Python objects that free themselves.

The native layer under :class:`runtime.llm.llama_engine.LlamaEngine`: each class owns one
llama.cpp pointer, declares the calls made on it, and frees it once, on :meth:`close` or when
garbage collected (as llama-cpp-python's ``_internals`` does). They hold no policy: which
tokens to decode, what to reuse and how to sample is the engine's. A failed call raises the
``RtError`` the engine would raise, so nothing above needs the C return codes.

``llama_model_free`` must come after every context made from the model: a context keeps
its model alive (a reference), so a model is freed only when its last context is gone.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_cpp import llama_cpp as L

from runtime.errors import GenerationError, ModelLoadError

logger = logging.getLogger(__name__)

# what llama_tokenize's parse_special adds (user-defined tokens are parsed either way)
PARSED_SPECIAL = L.LLAMA_TOKEN_ATTR_CONTROL | L.LLAMA_TOKEN_ATTR_UNKNOWN


class _BuftOverride(ctypes.Structure):
    """``struct llama_model_tensor_buft_override`` (llama-cpp-python declares the field as a
    void pointer and no struct for it)."""

    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


class NativeModel:
    """A GGUF loaded by llama.cpp, memory-mapped, on the CPU.

    ``overrides`` pairs a tensor-name regular expression with a ggml buffer type (a pointer from
    :func:`runtime.llm.llama_native.extra_buffer_types`): the tensors it matches are copied into
    that buffer type (repacked) instead of staying in the mapping. ``extra_bufts`` lets
    llama.cpp choose such buffer types itself for every tensor (``use_extra_bufts``).
    Raises :class:`ModelLoadError` when llama.cpp refuses the file.
    """

    def __init__(self, path: Path, *, overrides: Sequence[tuple[str, int]] = (), extra_bufts: bool = False) -> None:
        self.path = path
        self.handle: Any = None
        params = L.llama_model_default_params()
        params.n_gpu_layers = 0
        params.load_mode = L.LLAMA_LOAD_MODE_MMAP
        params.use_extra_bufts = extra_bufts
        # the patterns and the array must outlive the load call, which reads them
        keep = (_BuftOverride * (len(overrides) + 1))()
        for i, (pattern, buft) in enumerate(overrides):
            keep[i].pattern = pattern.encode()
            keep[i].buft = buft
        if overrides:
            params.tensor_buft_overrides = ctypes.cast(keep, ctypes.c_void_p)
        self.handle = L.llama_model_load_from_file(os.fsencode(path), params)
        if not self.handle:
            raise ModelLoadError(f"llama.cpp could not load {path}",
                                 hint="run `rt info` on it; RT_DEBUG=1 shows llama.cpp's log")
        self.vocab = L.llama_model_get_vocab(self.handle)
        self.n_swa = int(L.llama_model_n_swa(self.handle))
        self.n_ctx_train = int(L.llama_model_n_ctx_train(self.handle))
        self.n_vocab = int(L.llama_vocab_n_tokens(self.vocab))
        self._contexts = 0

    def tokenize(self, data: bytes, add_special: bool, parse_special: bool) -> list[int]:
        size = len(data) + 8
        for _ in range(2):
            buf = (L.llama_token * size)()
            n = L.llama_tokenize(self.vocab, data, len(data), buf, size, add_special, parse_special)
            if n >= 0:
                return list(buf[:n])
            size = -n
        raise GenerationError(f"llama.cpp could not tokenize a {len(data)}-byte text")

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        ids = (L.llama_token * len(tokens))(*tokens)
        size = len(tokens) * 8 + 16
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = L.llama_detokenize(self.vocab, ids, len(tokens), buf, size, False, True)
            if n >= 0:
                return buf.raw[:n]
            size = -n
        raise GenerationError(f"llama.cpp could not detokenize {len(tokens)} tokens")

    def piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = L.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = L.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
        return buf.raw[:n]

    def token_attr(self, token: int) -> int:
        return int(L.llama_vocab_get_attr(self.vocab, token))

    def token_text(self, token: int) -> str:
        text = L.llama_vocab_get_text(self.vocab, token) if token >= 0 else None
        return text.decode("utf-8", errors="replace") if text else ""

    @property
    def bos(self) -> int:
        return int(L.llama_vocab_bos(self.vocab))

    @property
    def eos(self) -> int:
        return int(L.llama_vocab_eos(self.vocab))

    def is_eog(self, token: int) -> bool:
        return bool(L.llama_vocab_is_eog(self.vocab, token))

    def close(self) -> None:
        """Free the model (idempotent); contexts made from it must be closed first."""
        if self.handle:
            L.llama_model_free(self.handle)
            self.handle = None

    def __del__(self) -> None:
        self.close()


@dataclass(frozen=True)
class ContextParams:
    """What a context is created with; ``kv_type`` is a ggml type number."""

    n_ctx: int
    n_batch: int
    n_outputs: int
    n_threads: int
    n_threads_batch: int
    kv_type: int
    flash_attn: bool = False


class NativeContext:
    """A llama.cpp context (KV cache, compute buffers, one sequence) on a :class:`NativeModel`.

    Raises :class:`ModelLoadError` when llama.cpp cannot create it.
    """

    def __init__(self, model: NativeModel, params: ContextParams) -> None:
        self.model = model  # keeps the model alive while this context is
        self.handle: Any = None
        p = L.llama_context_default_params()
        p.n_ctx = params.n_ctx
        p.n_batch = p.n_ubatch = params.n_batch
        p.n_seq_max = 1
        p.n_outputs_max = params.n_outputs
        p.n_threads, p.n_threads_batch = params.n_threads, params.n_threads_batch
        p.type_k = p.type_v = params.kv_type
        if params.flash_attn:
            p.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED
        p.no_perf = True
        self.handle = L.llama_init_from_model(model.handle, p)
        if not self.handle:
            raise ModelLoadError(f"llama.cpp could not create a {params.n_ctx}-token context for {model.path}",
                                 hint="try a smaller --ctx; RT_DEBUG=1 shows llama.cpp's log")
        self.memory = L.llama_get_memory(self.handle)
        self.n_ctx = int(L.llama_n_ctx(self.handle))
        self.n_batch = params.n_batch
        self.n_outputs = params.n_outputs
        self.batch = NativeBatch(self.n_batch)

    def decode(self, tokens: Sequence[int], pos0: int, *, all_logits: bool) -> None:
        """One ``llama_decode`` of ``tokens`` (at most ``n_batch``) at positions ``pos0`` on:
        logits for every position, or for the last only. Raises :class:`GenerationError`."""
        self.batch.fill(tokens, pos0, all_logits)
        rc = L.llama_decode(self.handle, self.batch.handle)
        if rc != 0:
            raise GenerationError(f"llama_decode failed with code {rc} at position {pos0}",
                                  hint="RT_DEBUG=1 shows llama.cpp's log")

    def logits(self, index: int = -1) -> bytes:
        """One copy of the output row ``index`` (float32s); slicing the pointer is 3x slower."""
        return ctypes.string_at(L.llama_get_logits_ith(self.handle, index), 4 * self.model.n_vocab)

    @property
    def threads(self) -> tuple[int, int]:
        """(generation threads, prompt threads)."""
        return int(L.llama_n_threads(self.handle)), int(L.llama_n_threads_batch(self.handle))

    def set_threads(self, n_threads: int, n_threads_batch: int) -> None:
        L.llama_set_n_threads(self.handle, max(1, n_threads), max(1, n_threads_batch))

    def remove_from(self, position: int) -> bool:
        """Drop the KV cache entries from ``position`` on; ``False`` when llama.cpp cannot."""
        return bool(L.llama_memory_seq_rm(self.memory, 0, position, -1))

    def clear(self) -> None:
        L.llama_memory_clear(self.memory, True)

    def first_position(self) -> int:
        """The lowest position the KV cache still holds (-1: empty)."""
        return int(L.llama_memory_seq_pos_min(self.memory, 0))

    def last_position(self) -> int:
        """The highest position the KV cache holds (-1: empty)."""
        return int(L.llama_memory_seq_pos_max(self.memory, 0))

    def get_state(self) -> bytearray:
        """The sequence's KV state, as ``llama_state_seq_get_data`` writes it, straight into
        the buffer returned: a 7B's 500-token state is ~65 MB, and one copy is all it needs
        (the hybrid's hand-over and the prefix cache hold it while the model runs)."""
        size = int(L.llama_state_seq_get_size(self.handle, 0))
        state = bytearray(size)
        if size == 0:
            return state
        view = (ctypes.c_uint8 * size).from_buffer(state)
        written = int(L.llama_state_seq_get_data(self.handle, view, size, 0))
        del view  # a bytearray with a view on it cannot be resized
        del state[max(0, written):]
        return state

    def set_state(self, state: bytes | bytearray) -> bool:
        """Replace the sequence's KV state with ``state``; ``False`` when llama.cpp refuses it
        (the cache is then empty). A bytearray is read in place, without a copy."""
        if isinstance(state, bytearray):
            buf = (ctypes.c_uint8 * len(state)).from_buffer(state)
        else:
            buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        done = int(L.llama_state_seq_set_data(self.handle, buf, len(state), 0)) == len(state)
        del buf
        if not done:
            self.clear()
        return done

    def close(self) -> None:
        """Free the batch and the context (idempotent)."""
        self.batch.close()
        if self.handle:
            L.llama_free(self.handle)
            self.handle = None

    def __del__(self) -> None:
        self.close()


class NativeBatch:
    """A ``llama_batch`` of up to ``capacity`` tokens, one sequence."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.handle: Any = L.llama_batch_init(capacity, 0, 1)

    def fill(self, tokens: Sequence[int], pos0: int, all_logits: bool) -> None:
        if not 0 < len(tokens) <= self.capacity:
            raise GenerationError(f"a batch of {len(tokens)} tokens does not fit one of {self.capacity}")
        batch = self.handle
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = pos0 + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1 if all_logits else 0
        batch.logits[len(tokens) - 1] = 1
        batch.n_tokens = len(tokens)

    def close(self) -> None:
        if self.handle is not None:
            L.llama_batch_free(self.handle)
            self.handle = None

    def __del__(self) -> None:
        self.close()
