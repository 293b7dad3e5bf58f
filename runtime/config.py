"""Defaults, once: frozen dataclasses that the library takes and the CLI reads its defaults from."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from runtime.errors import ConfigError


@dataclass(frozen=True)
class KVCacheType:
    """An element type for llama.cpp's KV cache (``--kv-type``): ggml stores ``block`` values in
    ``block_bytes`` bytes, and llama.cpp knows it as ``GGML_TYPE_<NAME>``."""

    name: str
    block: int
    block_bytes: int


# The KV cache types rt offers. q8_0 halves the cache; llama.cpp needs flash attention for a
# quantized V cache, which the engine turns on for it.
KV_CACHE_TYPES: dict[str, KVCacheType] = {
    kv.name: kv for kv in (KVCacheType("f16", 1, 2), KVCacheType("q8_0", 32, 34))
}
KV_TYPES = tuple(KV_CACHE_TYPES)


def kv_cache_type(name: str) -> KVCacheType:
    """The KV cache type called ``name``; :class:`ConfigError` naming the known ones otherwise."""
    try:
        return KV_CACHE_TYPES[name]
    except KeyError:
        raise ConfigError(f"unknown KV cache type {name!r}", hint=f"use one of {', '.join(KV_TYPES)}") from None


LOOKUP_DRAFT = 8  # prompt-lookup draft tokens per verification batch (docs/asking.md)


def default_threads() -> int:
    """The cores this process may use (affinity-aware), not llama-cpp-python's cpu_count()//2."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except OSError:
            pass
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class LoadOptions:
    """How a GGUF is loaded and its context created.

    ``repack`` loads the file a second time with llama.cpp's CPU "extra buffer types" (weight
    repacking, AMX) and generates on that copy, after the prompt is processed on the mapped
    weights (the hybrid, :mod:`runtime.llm.llama_engine`): faster generation, for a second copy
    of the weights and a second context in anonymous memory; repacked kernels crash on some
    CPUs, so a throwaway process tries them first. ``None`` (auto, the default) lets
    :func:`runtime.llm.repack_choice.choose` decide; ``True``/``False`` force it (``--repack`` /
    ``--no-repack``). ``threads=None`` means :func:`default_threads`.
    ``isolate`` runs the model in a child process so a native crash or an OOM kill is reported
    instead of taking the caller down with it.
    """

    n_ctx: int = 4096
    n_batch: int = 512
    threads: int | None = None
    kv_type: str = "f16"
    repack: bool | None = None
    force: bool = False
    isolate: bool = True
    verbose: bool = False
    prefix_cache: bool = True  # reuse a saved prompt prefix's KV state (runtime.llm.prefix_cache)
    # the longest prompt-lookup draft one batch can verify: the context reserves logits for
    # 1 + max_draft positions (n_outputs_max), n_vocab * 4 bytes each
    max_draft: int = LOOKUP_DRAFT

    def __post_init__(self) -> None:
        kv_cache_type(self.kv_type)  # checked once, here, for the CLI, the library and the engine

    @property
    def n_threads(self) -> int:
        return self.threads or default_threads()


def output_rows(max_draft: int, n_ubatch: int) -> int:
    """Rows of logits the engine reserves (``n_outputs_max``): the next token's, and one per
    prompt-lookup draft token ``max_draft`` allows, at most a micro-batch (the memory estimate
    counts the same rows)."""
    return max(1, min(1 + max_draft, n_ubatch))


LOOP_PERIODS = (8, 128)  # the shortest and longest block of tokens counted as a loop
# a loop that drifts ("the [serving.md.md] module ... the [serving.md.md.md] module ...") never
# repeats a block exactly: it is caught by the share of the last NEAR_REPEAT_WINDOW tokens whose
# NEAR_REPEAT_NGRAM-token run already came earlier in the answer
NEAR_REPEAT_WINDOW = 64
NEAR_REPEAT_NGRAM = 4


@dataclass(frozen=True)
class GenerateOptions:
    """Sampling and stopping. ``temperature=0`` is greedy and deterministic."""

    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 0.95
    top_k: int = 40
    seed: int = 0
    stop: tuple[str, ...] = field(default_factory=tuple)
    # prompt-lookup decoding (runtime.llm.lookup): draft up to ``lookup_draft`` tokens by finding
    # the last ``lookup_ngram`` (down to 1) generated tokens in the prompt; greedy only, off by
    # default (docs/asking.md: llama.cpp is not batch-invariant, so greedy output may change)
    prompt_lookup: bool = False
    lookup_draft: int = LOOKUP_DRAFT  # capped by LoadOptions.max_draft
    lookup_ngram: int = 3
    # draft only as long as the running acceptance makes worth verifying, with one more row of a
    # verification batch costing ``lookup_row_cost`` single-token decodes (runtime.llm.lookup);
    # None: measured once per model and machine, and cached (runtime.llm.row_cost).
    # lookup_adaptive=False drafts every match in full
    lookup_adaptive: bool = True
    lookup_row_cost: float | None = None
    # generation threads for this call (rt serve re-samples the busy cores per request);
    # None keeps the count the model was loaded with
    threads: int | None = None
    # a small model can fall into a loop ("X is a Y that is used to make an X. X is a ..."):
    # generation stops once the last block of LOOP_PERIODS tokens has come ``stop_repeats`` times
    # in a row (runtime.llm.generation.repeated_block); 0 never stops for that
    stop_repeats: int = 3
    # generation also stops once this share of the last NEAR_REPEAT_WINDOW tokens end runs the
    # answer wrote before (runtime.llm.generation.LoopGuard); 0 never stops for that. SmolLM2's
    # drifting loop on the README's question (tests/runtime/test_loop_guard.py) is caught 129
    # tokens in, where it ran to --max-tokens before
    stop_near_repeats: float = 0.75
    # llama.cpp's repetition penalty over the last ``penalty_last_n`` generated tokens (the prompt
    # is not counted, so copying a source's words costs nothing); 1.0 is off
    repeat_penalty: float = 1.0
    penalty_last_n: int = 64


@dataclass(frozen=True)
class RemoteOptions:
    """How rt talks to an OpenAI-compatible server (``--llm-url``, ``--embed-url``).

    Timeouts and retries are bounded: a refused connection, a 429 or a 502/503/504 is retried
    ``retries`` times (waiting the server's ``Retry-After``, at most ``max_wait`` seconds), a
    generation that sends nothing for ``read_timeout`` seconds fails. ``n_ctx`` is the context
    window assumed when the server does not say (llama-cpp-python's server default, 2048).
    """

    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    retries: int = 2
    max_wait: float = 5.0
    n_ctx: int = 2048
