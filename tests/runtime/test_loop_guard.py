"""A model caught in a loop stops after the third copy of the block, instead of filling
``max_tokens`` with it (SmolLM2 did so on the README's own question after a change of chunking)."""

from __future__ import annotations

from pathlib import Path

from runtime.config import GenerateOptions, LoadOptions
from runtime.llm.generation import repeated_block
from runtime.llm.model import Model

LOOPING = "The preflight is a function that is used to generate a preflight. " * 3


def test_a_block_that_came_three_times_in_a_row_is_found() -> None:
    block = list(range(100, 110))
    assert repeated_block([1, 2, 3] + block * 3, 3) == 10
    assert repeated_block([1, 2, 3] + block * 2, 3) == 0  # twice is not a loop yet
    assert repeated_block(block * 3 + [7], 3) == 0  # the loop must end the tokens
    assert repeated_block([5] * 30, 3) == 8  # one token over and over is a block of the shortest length
    assert repeated_block(list(range(20)) * 3, 3, periods=(8, 16)) == 0  # longer than the longest period
    assert repeated_block(block * 5, 0) == 0 and repeated_block(block * 5, 1) == 0  # off


def test_a_looping_model_stops_after_the_third_copy(smollm2_path: Path) -> None:
    with Model(smollm2_path, LoadOptions(threads=1)) as model:  # one thread: greedy text is repeatable
        guarded = model.complete(LOOPING, GenerateOptions(max_tokens=200, threads=1))
        unguarded = model.complete(LOOPING, GenerateOptions(max_tokens=200, threads=1, stop_repeats=0))
    assert unguarded.finish_reason == "length" and unguarded.completion_tokens == 200  # it does loop
    assert guarded.finish_reason == "stop" and guarded.completion_tokens < 100
    assert guarded.text.count("generate a preflight") == 3
    assert unguarded.text.startswith(guarded.text)
