"""The hybrid (``repack``): the prompt decoded on the mapped weights, its KV cache handed to a
context on the repacked weights of the same file, every answer token decoded there. Real
llama.cpp, real SmolLM2 and Gemma 3, one pinned thread (thread counts move llama.cpp's numerics).

Repacked-only generation is the reference: on this machine llama.cpp's repacked (AMX) kernels
crash on batches, so the reference decodes the prompt one token at a time too."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from runtime.config import GenerateOptions, LoadOptions
from runtime.errors import ModelLoadError
from runtime.llm import repacked_load
from runtime.llm.llama_engine import LlamaEngine
from runtime.llm.native import NativeModel
from runtime.llm.types import Stream
from runtime.llm.worker import probe_repack
from tests.runtime.hybrid_reference import repacked_greedy

HYBRID = LoadOptions(n_ctx=512, threads=1, prefix_cache=False, repack=True)
GREEDY = GenerateOptions(max_tokens=65, prompt_lookup=False)
PROMPT = ("<|im_start|>user\nWhat is the boiling point of water, and why does it change on a "
          "mountain?<|im_end|>\n<|im_start|>assistant\n")


@pytest.fixture(scope="module", autouse=True)
def _repacking_works_here(smollm2_path: Path) -> None:
    failure = probe_repack(smollm2_path, HYBRID)
    if failure is not None:  # a CPU whose repacked kernels crash even one token at a time
        pytest.skip(f"repacked weights crash here: {failure.message}")


def generated(engine: LlamaEngine, prompt: str, options: GenerateOptions = GREEDY) -> list[int]:
    """The answer's tokens (every one but the last, which is sampled and never decoded)."""
    n = len(engine.prompt_tokens(prompt))
    for _ in engine.stream(prompt, options):
        pass
    return list(engine.cached_tokens[n:])


def agreement(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


@pytest.mark.slow  # the fast path keeps SmolLM2's token identity below
def test_on_gemma_the_hybrid_generates_the_repacked_only_greedy_tokens(gemma_path: Path) -> None:
    """On this prompt; over 8 questions the two agree for 64 tokens on 3 (docs/speed.md): the
    mapped and the repacked kernels round differently, which can flip a close greedy choice."""
    with LlamaEngine(gemma_path, HYBRID) as engine:
        assert engine.hybrid
        prompt = engine.prompt_tokens(PROMPT)
        hybrid = generated(engine, PROMPT)
    assert len(hybrid) == 64
    assert hybrid == repacked_greedy(gemma_path, prompt, 64)


def test_on_smollm2_the_hybrid_is_as_close_to_repacked_only_as_plain_loading_is(smollm2_path: Path) -> None:
    """SmolLM2's Q4_1 kernels differ between the repacked and the plain layouts enough to move
    a greedy choice within 64 tokens (docs/speed.md measures how often): the hybrid cannot
    match repacked-only exactly, but it must never be further from it than plain loading."""
    with LlamaEngine(smollm2_path, HYBRID) as engine:
        prompt = engine.prompt_tokens(PROMPT)
        hybrid = generated(engine, PROMPT)
    with LlamaEngine(smollm2_path, LoadOptions(n_ctx=512, threads=1, prefix_cache=False)) as engine:
        assert not engine.hybrid
        plain = generated(engine, PROMPT)
    reference = repacked_greedy(smollm2_path, prompt, 64)
    assert agreement(hybrid, reference) >= agreement(plain, reference) > 0


def test_a_growing_chat_reuses_the_cached_prefix(gemma_path: Path) -> None:
    """The second prompt starts with the first and the answer; the generating context keeps what
    they share, and the answer is the one a fresh engine gives."""
    with LlamaEngine(gemma_path, HYBRID) as engine:
        n_first = len(engine.prompt_tokens(PROMPT))
        first = engine.detokenize(generated(engine, PROMPT, GenerateOptions(max_tokens=9, prompt_lookup=False)))
        follow = PROMPT + first + "<|im_end|>\n<|im_start|>user\nAnd in Celsius?<|im_end|>\n<|im_start|>assistant\n"
        completion = Stream(engine.stream(follow, GenerateOptions(max_tokens=8, prompt_lookup=False))).complete()
        again = generated(engine, follow, GenerateOptions(max_tokens=8, prompt_lookup=False))
    assert completion.cached_tokens >= n_first - 1
    with LlamaEngine(gemma_path, HYBRID) as fresh:
        assert generated(fresh, follow, GenerateOptions(max_tokens=8, prompt_lookup=False)) == again


def test_prompt_lookup_is_off_in_the_hybrid_and_the_prefix_cache_still_works(gemma_path: Path) -> None:
    options = GenerateOptions(max_tokens=16, prompt_lookup=True, lookup_adaptive=False)
    with LlamaEngine(gemma_path, LoadOptions(n_ctx=512, threads=1, repack=True)) as engine:
        tokens = generated(engine, PROMPT, options)
        assert engine.last_drafts == []  # no verification batch ever reaches the repacked kernels
    with LlamaEngine(gemma_path, LoadOptions(n_ctx=512, threads=1, repack=True)) as engine:
        completion = Stream(engine.stream(PROMPT, options)).complete()
        assert completion.cached_tokens > 0  # the saved prefix of the first load
        assert list(engine.cached_tokens[-len(tokens):]) == tokens


def test_the_repacked_copy_loads_while_the_prompt_is_decoded(gemma_path: Path) -> None:
    """The engine opens without waiting for the repacked copy (it loads in a thread); the
    first answer waits for it, then generates on it."""
    with LlamaEngine(gemma_path, HYBRID) as engine:
        loading = [t for t in threading.enumerate() if t.name == "rt-repacked-load"]
        tokens = generated(engine, PROMPT, GenerateOptions(max_tokens=9, prompt_lookup=False))
        assert engine.hybrid and engine.repack_failure is None
        assert not any(t.is_alive() for t in threading.enumerate() if t.name == "rt-repacked-load")
    assert loading, "the repacked copy was loaded before the engine returned"
    assert len(tokens) == 8


def test_a_repacked_copy_that_fails_to_load_falls_back_to_the_mapped_weights(
        gemma_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused second load (memory, say) is not fatal: the answer comes from the mapped
    weights, token for token what plain loading gives, and the engine says why."""
    class RefusingRepack(NativeModel):
        def __init__(self, path: Path, **kwargs: Any) -> None:
            if kwargs.get("extra_bufts"):
                self.handle = None  # what a failed load leaves for __del__
                raise ModelLoadError("llama.cpp could not allocate the repacked copy")
            super().__init__(path, **kwargs)

    options = GenerateOptions(max_tokens=17, prompt_lookup=False)
    monkeypatch.setattr(repacked_load, "NativeModel", RefusingRepack)
    with LlamaEngine(gemma_path, HYBRID) as engine:
        fallback = generated(engine, PROMPT, options)
        assert not engine.hybrid
        assert "could not allocate the repacked copy" in (engine.repack_failure or "")
    with LlamaEngine(gemma_path, LoadOptions(n_ctx=512, threads=1, prefix_cache=False)) as engine:
        assert fallback == generated(engine, PROMPT, options)
