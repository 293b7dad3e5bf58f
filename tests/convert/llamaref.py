"""llama.cpp as a test oracle: tokenize text and get the logits of every position.

rt's engine returns sampled text, not full logit matrices, so the conversion tests use this
small wrapper over the ctypes API. It loads with ``use_extra_bufts = False``: the native
build segfaults in the AMX matmul of the repacked weights on this CPU otherwise.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
from llama_cpp import llama_cpp as L

_state: dict[str, object] = {}


def _quiet_backend() -> None:
    if "callback" not in _state:
        _state["callback"] = L.llama_log_callback(lambda level, text, user: None)
        L.llama_log_set(_state["callback"], ctypes.c_void_p(0))
        L.llama_backend_init()


class LlamaRef:
    """One model and context; ``logits(tokens)`` evaluates a fresh sequence."""

    def __init__(self, path: Path, n_ctx: int = 512, threads: int = 2) -> None:
        _quiet_backend()
        params = L.llama_model_default_params()
        params.use_extra_bufts = False
        self.model = L.llama_model_load_from_file(str(path).encode(), params)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        cparams = L.llama_context_default_params()
        cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = n_ctx
        cparams.n_threads = cparams.n_threads_batch = threads
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not create a context for {path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.n_ctx = n_ctx

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = False) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 16
        buffer = (L.llama_token * size)()
        n = L.llama_tokenize(self.vocab, data, len(data), buffer, size, add_special, parse_special)
        if n < 0:
            raise RuntimeError(f"tokenize needed {-n} tokens")
        return list(buffer[:n])

    def logits(self, tokens: list[int]) -> np.ndarray:
        """(len(tokens), n_vocab) float32 logits, one row per position."""
        assert 0 < len(tokens) <= self.n_ctx
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)
        batch = L.llama_batch_init(len(tokens), 0, 1)
        try:
            for i, token in enumerate(tokens):
                batch.token[i] = token
                batch.pos[i] = i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = True
            batch.n_tokens = len(tokens)
            status = L.llama_decode(self.ctx, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status}")
            rows = []
            for i in range(len(tokens)):
                pointer = L.llama_get_logits_ith(self.ctx, i)
                rows.append(np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy())
            return np.stack(rows)
        finally:
            L.llama_batch_free(batch)

    def close(self) -> None:
        if getattr(self, "ctx", None):
            L.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            L.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> LlamaRef:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
