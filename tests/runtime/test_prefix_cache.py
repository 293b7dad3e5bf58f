"""The KV state of a prompt's fixed prefix is saved under RT_HOME and loaded by the next run."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from runtime.config import GenerateOptions, LoadOptions
from runtime.llm import prefix_cache
from runtime.llm.generation import Completion
from runtime.llm.llama_engine import LlamaEngine

OPTIONS = LoadOptions(n_ctx=1024, threads=1)
SYSTEM = ("<|im_start|>system\nYou answer questions from the numbered sources below. Quote them, cite them "
          "as [1] or [2], and say so when they do not answer the question.<|im_end|>\n")


def ask(path: Path, sources: str, question: str, options: LoadOptions = OPTIONS) -> Completion:
    prompt = f"{SYSTEM}<|im_start|>user\nSources:\n{sources}\n\nQuestion: {question}<|im_end|>\n<|im_start|>assistant\n"
    with LlamaEngine(path, options) as engine:  # a fresh process's engine: an empty KV cache
        generator = engine.stream(prompt, GenerateOptions(max_tokens=16))
        while True:
            try:
                next(generator)
            except StopIteration as stop:
                return stop.value


LEASE = "[1] The lease runs from 1 March 2024 to 28 February 2027; the rent is 1,240 euros."
BOILER = "[1] The boiler is a Vaillant ecoTEC plus 825, serviced every October."


def test_the_next_run_loads_the_shared_prefix_and_answers_the_same(smollm2_path: Path) -> None:
    first = ask(smollm2_path, LEASE, "When does the lease end?")
    assert first.cached_tokens == 0
    assert prefix_cache.cache_file(smollm2_path, OPTIONS).exists()
    second = ask(smollm2_path, BOILER, "Which boiler is it?")
    assert second.cached_tokens >= 30  # the system prompt, not the sources
    uncached = ask(smollm2_path, BOILER, "Which boiler is it?", replace(OPTIONS, prefix_cache=False))
    assert uncached.cached_tokens == 0
    assert second.text == uncached.text
    third = ask(smollm2_path, LEASE, "What is the rent?")
    assert third.cached_tokens == second.cached_tokens  # the saved state is now the shared prefix only


@pytest.mark.slow  # four model runs; the fast path keeps the save-and-load run and the corrupt file
def test_other_context_settings_or_a_changed_model_file_do_not_use_the_state(
        smollm2_path: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    shutil.copyfile(smollm2_path, model)
    ask(model, LEASE, "When does the lease end?")
    assert ask(model, BOILER, "Which boiler is it?").cached_tokens > 0
    assert ask(model, BOILER, "Which boiler is it?", replace(OPTIONS, n_ctx=512)).cached_tokens == 0
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert ask(model, BOILER, "Which boiler is it?").cached_tokens == 0


def test_a_corrupt_cache_file_is_ignored_and_replaced(smollm2_path: Path) -> None:
    ask(smollm2_path, LEASE, "When does the lease end?")
    path = prefix_cache.cache_file(smollm2_path, OPTIONS)
    good = path.read_bytes()
    for bad in (b"garbage", good[:len(good) // 2], good[:-100] + b"\0" * 100 + b"x"):
        path.write_bytes(bad)
        answer = ask(smollm2_path, BOILER, "Which boiler is it?")
        assert answer.cached_tokens == 0 and answer.completion_tokens > 0
    assert prefix_cache.read(path) is not None
