"""Budgeting with the real SmolLM2 tokenizer: prompt building stays cheap with a huge ``-k``, and
keeps exactly the most sources that fit."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime.config import LoadOptions
from runtime.llm.types import Prompt
from runtime.rag.prompt import BOS_MARGIN, build_prompt, most_that_fit


@dataclass(frozen=True)
class Passage:
    text: str
    path: str
    page: int | None = None
    lines: tuple[int, int] | None = None


class CountingModel:
    """The real model, with its tokenizer calls counted (the cost being tested)."""

    def __init__(self, model: object) -> None:
        self.model = model
        self.n_ctx: int = model.n_ctx  # type: ignore[attr-defined]
        self.calls = 0
        self.characters = 0

    def render(self, prompt: Prompt) -> str:
        return str(self.model.render(prompt))  # type: ignore[attr-defined]

    def count_tokens(self, prompt: Prompt | str) -> int:
        text = self.model.render(prompt) if isinstance(prompt, Prompt) else prompt  # type: ignore[attr-defined]
        self.calls += 1
        self.characters += len(text)
        return int(self.model.count_tokens(text))  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def smollm2(smollm2_path: Path):  # type: ignore[no-untyped-def]
    from runtime.llm.model import Model

    with Model(smollm2_path, LoadOptions(n_ctx=2048, threads=1)) as model:
        yield model


def passages(n: int) -> list[Passage]:
    return [Passage(f"Passage {i}: the Velomax chain is oiled every {i} kilometres.", f"/notes/doc{i % 97}.md",
                    lines=(i, i + 3)) for i in range(n)]


def test_k_100000_builds_the_prompt_with_a_few_tokenizer_calls(smollm2: object) -> None:
    model = CountingModel(smollm2)
    sources = passages(100_000)
    built = build_prompt(model, "How often is the Velomax chain oiled?", sources, reserve=256)
    kept = len(built.sources)
    assert 10 < kept < 200 and built.sources == sources[:kept]
    assert built.dropped_sources == 100_000 - kept
    assert built.prompt_tokens + BOS_MARGIN + 256 <= 2048
    # about 2 log2(kept) renders, none of them much longer than twice the prompt that fits
    assert model.calls <= 2 * kept.bit_length() + 2, model.calls
    assert model.characters < 5 * len(built.text) * kept.bit_length()

    one_more = build_prompt(model, "How often is the Velomax chain oiled?", sources[:kept + 1], reserve=0)
    assert one_more.prompt_tokens + BOS_MARGIN + 256 > 2048  # exactly the most that fit


def test_most_that_fit_finds_the_largest_fitting_prefix() -> None:
    rng = random.Random(7)
    for _ in range(500):
        limit = rng.randint(0, 300)
        answer = rng.randint(0, limit)
        calls: list[int] = []

        def fits(n: int) -> bool:
            calls.append(n)
            return n <= answer

        assert most_that_fit(fits, limit) == answer
        assert len(calls) <= 2 * max(answer, 1).bit_length() + 2
        assert all(n <= max(2 * answer, 1) for n in calls)  # never far past what fits
