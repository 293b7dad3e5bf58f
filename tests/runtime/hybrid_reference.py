"""Greedy tokens on the repacked weights alone, one token at a time (the reference the hybrid
must match): repacked kernels that crash on some CPUs (AMX here) crash in batches only."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from pathlib import Path

from runtime.llm.kv_sequence import KVSequence
from runtime.llm.llama_native import ggml_kv_type, init_backend
from runtime.llm.native import ContextParams, NativeContext, NativeModel


def repacked_greedy(path: Path, prompt: Sequence[int], n: int, n_ctx: int = 512, *, repack: bool = True) -> list[int]:
    init_backend()
    model = NativeModel(path, extra_bufts=repack)
    context = NativeContext(model, ContextParams(n_ctx=n_ctx, n_batch=min(512, n_ctx), n_outputs=1, n_threads=1,
                                                 n_threads_batch=1, kv_type=ggml_kv_type("f16")))
    try:
        sequence = KVSequence(context)
        for token in prompt:
            sequence.decode([token])
        out: list[int] = []
        while len(out) < n:
            logits = array("f")
            logits.frombytes(context.logits(-1))
            token = max(range(len(logits)), key=logits.__getitem__)
            if model.is_eog(token):
                break
            out.append(token)
            sequence.decode([token])
        return out
    finally:
        context.close()
        model.close()
