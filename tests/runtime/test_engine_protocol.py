"""Both engines behind :class:`Model` satisfy the one :class:`Engine` protocol, on the real SmolLM2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.config import GenerateOptions, LoadOptions
from runtime.llm.types import Engine

OPTIONS = LoadOptions(n_ctx=256, threads=1)


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "child process"])
def test_engine_satisfies_the_protocol_and_generates(smollm2_path: Path, isolate: bool) -> None:
    if isolate:
        from runtime.llm.worker import WorkerEngine

        engine: Engine = WorkerEngine(smollm2_path, OPTIONS)
    else:
        from runtime.llm.llama_engine import LlamaEngine

        engine = LlamaEngine(smollm2_path, OPTIONS)
    try:
        assert isinstance(engine, Engine)
        assert engine.n_ctx == 256
        assert (engine.pid == os.getpid()) is not isolate
        tokens = engine.tokenize("Hello world")
        assert engine.detokenize(tokens) == "Hello world"
        assert engine.special_tokens()["eos_token"]
        stream = engine.stream("The capital of France is", GenerateOptions(max_tokens=3))
        pieces = []
        while True:
            try:
                pieces.append(next(stream))
            except StopIteration as stop:
                completion = stop.value
                break
        assert completion.text == "".join(pieces) and completion.completion_tokens == 3
    finally:
        engine.close()
