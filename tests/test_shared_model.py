"""The suite's shared model process (tests/shared_model.py) generates what a fresh one would."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from runtime.config import GenerateOptions, LoadOptions
from runtime.llm.model import Model
from tests.shared_model import ModelPool

OPTIONS = LoadOptions(n_ctx=512, threads=1)
GREEDY = GenerateOptions(max_tokens=12, threads=1)
FIRST = [{"role": "user", "content": "What is the capital of France?"}]
SECOND = [{"role": "user", "content": "What is the capital of Italy?"}]
START_OWN = Model._start_engine  # before the fixture replaces it


def _answer(model: Model, messages: list[dict[str, str]]) -> tuple[str, int]:
    done = model.complete(model.chat_prompt(messages), GREEDY)
    return done.text, done.cached_tokens


def test_a_borrowed_process_answers_as_a_fresh_one_with_nothing_cached(
        shared_model_process: ModelPool, smollm2_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = shared_model_process.started
    with Model(smollm2_path, OPTIONS) as first:
        pid = first.pid
        _answer(first, FIRST)  # leaves the chat template's prefix in the KV cache and on disk
    shared_model_process.after_test()  # as between two tests
    with Model(smollm2_path, OPTIONS) as again:
        assert again.pid == pid  # the same process, lent again
        borrowed = _answer(again, SECOND)
    assert shared_model_process.started - started <= 1

    monkeypatch.setattr(Model, "_start_engine", START_OWN)
    with Model(smollm2_path, OPTIONS) as fresh:
        assert fresh.pid != pid
        assert borrowed == _answer(fresh, SECOND)
    assert borrowed[1] == 0


@pytest.mark.slow  # starts three model processes; the test above is the fast path's check of the pool
def test_two_models_open_at_once_get_two_processes_and_a_crash_is_not_lent_again(
        shared_model_process: ModelPool, smollm2_path: Path) -> None:
    with Model(smollm2_path, OPTIONS) as one, Model(smollm2_path, OPTIONS) as two:
        assert one.pid != two.pid
        dead = two.pid
    os.kill(dead, getattr(signal, "SIGKILL", signal.SIGTERM))
    shared_model_process.after_test()
    with Model(smollm2_path, OPTIONS) as a, Model(smollm2_path, OPTIONS) as b:
        assert dead not in (a.pid, b.pid)
        assert _answer(a, FIRST)[0] and _answer(b, FIRST)[0]
