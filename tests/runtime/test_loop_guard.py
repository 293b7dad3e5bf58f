"""A model caught in a loop stops after the third copy of the block, instead of filling
``max_tokens`` with it (SmolLM2 did so on the README's own question after a change of chunking),
and so does a loop that drifts a little on each turn ("the [serving.md.md] module ... the
[serving.md.md.md] module ..."), which never repeats a block exactly; either way the stop is
reported (``finish_reason`` ``"loop"``, one line on stderr from ``rt ask``)."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli
from runtime.config import NEAR_REPEAT_WINDOW, GenerateOptions, LoadOptions
from runtime.llm.generation import LoopGuard, repeated_block
from runtime.llm.model import Model
from runtime.llm.types import Prompt
from runtime.rag.prompt import RAG_STOP

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
        guarded = model.complete(LOOPING, GenerateOptions(max_tokens=120, threads=1))
        unguarded = model.complete(LOOPING, GenerateOptions(max_tokens=120, threads=1, stop_repeats=0,
                                                            stop_near_repeats=0))
    assert unguarded.finish_reason == "length" and unguarded.completion_tokens == 120  # it does loop
    assert guarded.finish_reason == "loop" and guarded.completion_tokens < 100
    assert guarded.text.count("generate a preflight") == 3
    assert unguarded.text.startswith(guarded.text)


def most_repeated_sentence(text: str) -> int:
    """How often the most frequent sentence of ``text`` comes, its drift (".md.md") ignored."""
    sentences = [re.sub(r"(\.md)+", ".md", s.strip()) for s in re.split(r"(?<=\.)\s+", text) if s.strip()]
    return max(Counter(sentences).values(), default=0)


def first_stop(guard: LoopGuard, tokens: list[int]) -> int | None:
    """The number of tokens ``guard`` took before it called a loop, else None."""
    for n, token in enumerate(tokens, start=1):
        if guard.add(token):
            return n
    return None


def drifting(turns: int) -> list[int]:
    """A sentence of 20 tokens said again and again, one token of it different each turn (so no
    block ever repeats exactly)."""
    tokens: list[int] = []
    for turn in range(turns):
        sentence = list(range(10, 30))
        sentence[7] = 1000 + turn
        tokens += sentence
    return tokens


def test_a_loop_that_drifts_is_stopped_though_no_block_repeats_exactly() -> None:
    tokens = drifting(10)
    assert all(repeated_block(tokens[:n], 3) == 0 for n in range(1, len(tokens) + 1))
    stopped = first_stop(LoopGuard(times=3, share=0.75), tokens)
    # the first turn is new; the window of 64 tokens fills with turns whose runs came before
    assert stopped is not None and 64 < stopped <= 20 + NEAR_REPEAT_WINDOW + 20
    assert first_stop(LoopGuard(times=3, share=0.0), tokens) is None  # share 0: off


def test_an_answer_that_only_reuses_its_own_phrases_is_not_a_loop() -> None:
    # a list answer: every item opens and closes the same way ("- The ... [1]\n"), its words differ
    tokens: list[int] = []
    for item in range(20):
        tokens += [5, 6, 7] + [100 + 10 * item + k for k in range(8)] + [8, 9, 10, 11]
    guard = LoopGuard(times=3, share=0.75)
    assert first_stop(guard, tokens) is None
    assert 0 < guard.repeated_share < 0.5


def test_the_exact_repeat_is_named_before_the_drift_rule_could_fill_its_window() -> None:
    block = list(range(100, 110))
    guard = LoopGuard(times=3, share=0.75)
    said = [guard.add(t) for t in [1, 2, 3] + block * 3]
    assert said[-1] == "repeated the same 10 tokens 3 times in a row" and not any(said[:-1])


# The README's question over docs/ as it stood in this round: its prompt (five retrieved
# passages, rt's instruction, the "According to [" start) as rt built it, so the test does not
# move with docs/. SmolLM2 answered it with "the [serving.md.md] module is a preflight generator
# ..." over and over, one ".md" more now and then, until --max-tokens.
README_PROMPT = Path(__file__).resolve().parent / "readme_loop_prompt.json"


@pytest.mark.slow  # two generations, one of them 300 tokens
def test_the_readme_question_that_looped_is_stopped_early(smollm2_path: Path) -> None:
    saved = json.loads(README_PROMPT.read_text(encoding="utf-8"))
    prompt = Prompt(saved["messages"], saved["answer_prefix"])
    with Model(smollm2_path, LoadOptions(threads=1)) as model:  # one thread: greedy text is repeatable
        unguarded = model.complete(prompt, GenerateOptions(max_tokens=300, threads=1, stop=RAG_STOP,
                                                           stop_repeats=0, stop_near_repeats=0))
        guarded = model.complete(prompt, GenerateOptions(max_tokens=300, threads=1, stop=RAG_STOP))
    assert unguarded.finish_reason == "length" and most_repeated_sentence(unguarded.text) >= 5  # it does loop
    assert guarded.finish_reason == "loop" and guarded.completion_tokens < 150
    # what is left of the loop is at most the stretch the guard needed to see it
    assert most_repeated_sentence(guarded.text) <= 3


@pytest.mark.slow  # starts SmolLM2 on a 500-token prompt
def test_rt_ask_says_in_one_line_that_the_answer_was_stopped_for_a_loop(smollm2_path: Path) -> None:
    saved = json.loads(README_PROMPT.read_text(encoding="utf-8"))
    system, user = (m["content"] for m in saved["messages"])
    result = CliRunner().invoke(cli, ["ask", "--no-rag", "--json", "--threads", "1", "--model", str(smollm2_path),
                                      "--system", system, user])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["finish_reason"] == "loop"
    warnings = [line for line in result.stderr.splitlines() if "repeating itself" in line]
    assert len(warnings) == 1 and warnings[0].startswith("rt: warning: the model began repeating itself")
    assert f"after {data['usage']['completion_tokens']} tokens" in warnings[0]
    # RT_LOOP_STOP=0 (benchmarks timing a fixed number of tokens) lets the loop run to the limit
    result = CliRunner().invoke(cli, ["ask", "--no-rag", "--json", "--threads", "1", "--model", str(smollm2_path),
                                      "--max-tokens", "200", "--system", system, user], env={"RT_LOOP_STOP": "0"})
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["finish_reason"] == "length" and data["usage"]["completion_tokens"] == 200
    assert "repeating itself" not in result.stderr


def test_a_repetition_penalty_steers_greedy_text_off_its_loop_and_stays_repeatable(smollm2_path: Path) -> None:
    off = GenerateOptions(max_tokens=40, threads=1, stop_repeats=0, stop_near_repeats=0)
    penalised = replace(off, repeat_penalty=1.5)
    with Model(smollm2_path, LoadOptions(threads=1)) as model:
        plain = model.complete(LOOPING, off)
        first, again = model.complete(LOOPING, penalised), model.complete(LOOPING, penalised)
    assert first.text == again.text  # still greedy: the penalty only reweighs the logits
    assert first.text != plain.text
    # it counts the answer's own tokens, not the prompt's: the first token is the unpenalised one
    assert first.text.split()[0] == plain.text.split()[0]


def test_a_model_counting_up_is_a_loop() -> None:
    # "[1], [2], [3], ..." and "[5] is a ram module. [6] is a ram module. ...": a number changes in
    # every turn (SmolLM2 on two questions of the eval set, one of them to --max-tokens)
    pieces = {7: b"[", 8: b"],", 9: b" is", 10: b" a", 11: b" ram", 12: b" module", 13: b".", 14: b" [",
              15: b"]"}
    counting = [(7, b"["), *((100 + n, str(n).encode()) for n in [1]), (8, b"],")]
    for n in range(2, 60):
        counting += [(14, b" ["), (100 + n, str(n).encode()), (8, b"],")]
    guard = LoopGuard(times=3, share=0.75)
    assert any(guard.add(t, p) for t, p in counting)
    assert LoopGuard(times=3, share=0.75).add(100, b"5") is None
    described: list[int] = []
    for n in range(1, 6):
        described += [7, 100 + n, 15, 9, 10, 11, 12, 13]
    guard = LoopGuard(times=3, share=0.75)
    said = [guard.add(t, pieces.get(t, str(t - 100).encode())) for t in described]
    assert said.index(next(s for s in said if s)) == 3 * 8 - 1  # the third "[n] is a ram module."
    # without knowing the pieces no block repeats exactly, and no window is full: no loop yet
    assert not any(LoopGuard(times=3, share=0.75).add(t) for t in described)
