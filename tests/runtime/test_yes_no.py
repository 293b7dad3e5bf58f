"""The arithmetic of the yes/no probe (runtime.llm.yes_no) and the tokens it sums, with the real
SmolLM2 tokenizer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from runtime.config import LoadOptions
from runtime.llm.yes_no import NO_WORDS, YES_WORDS, from_logits, spelling_tokens


def test_p_yes_is_the_softmax_mass_of_yes_against_no() -> None:
    logits = [0.0, math.log(3.0), 5.0, -2.0]
    p_yes, yes, no = from_logits(logits, [1], [0])
    total = sum(math.exp(x) for x in logits)
    assert p_yes == pytest.approx(0.75) and yes == pytest.approx(3.0 / total) and no == pytest.approx(1.0 / total)


def test_huge_logits_do_not_overflow() -> None:
    p_yes, yes, no = from_logits([800.0, 801.0, 0.0], [1], [0])
    assert p_yes == pytest.approx(1 / (1 + math.exp(-1))) and yes + no == pytest.approx(1.0)


def test_neither_word_likely_is_an_even_choice() -> None:
    assert from_logits([0.0, -1e9, -1e9], [1], [2])[0] == 0.5


def test_the_spellings_are_single_tokens_of_the_real_vocabulary(smollm2_path: Path) -> None:
    from runtime.llm.llama_engine import LlamaEngine

    with LlamaEngine(smollm2_path, LoadOptions(n_ctx=256, prefix_cache=False)) as engine:
        yes, no = spelling_tokens(engine.tokenize, YES_WORDS), spelling_tokens(engine.tokenize, NO_WORDS)
        assert len(yes) >= 3 and len(no) >= 3 and not set(yes) & set(no)
        assert {engine.detokenize([t]).strip().lower() for t in yes} == {"yes"}
        assert {engine.detokenize([t]).strip().lower() for t in no} == {"no"}
