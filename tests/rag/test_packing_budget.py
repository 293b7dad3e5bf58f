"""Packing costs what the prompt keeps, not what retrieval returned (issue 21 §3): ``-k 1000`` and
``-k 100000`` pack a bounded number of hits and count tokens a bounded number of times, and the
prompt keeps what packing every hit kept.

The model here is a deterministic word counter standing in for the plug point that budgeting
uses (``n_ctx``, ``render``, ``count_tokens``), so that calls can be counted; the same budget
search runs on the real SmolLM2 in tests/rag/test_packing.py."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from runtime.index import Hit
from runtime.llm.types import Prompt
from runtime.rag.config import PackingOptions
from runtime.rag.packing import FIRST_ROUND, build_packed_prompt, pack
from runtime.rag.prompt import ANSWER_PREFIX, build_prompt


class WordCounter:
    """A chat model whose tokens are words; counts its token-count calls."""

    def __init__(self, n_ctx: int) -> None:
        self.n_ctx = n_ctx
        self.counts = 0

    def render(self, prompt: Prompt) -> str:
        return "".join(f"<{m['role']}>\n{m['content']}\n" for m in prompt.messages) + "<assistant>\n" \
            + prompt.answer_prefix

    def count_tokens(self, prompt: Prompt | str) -> int:
        self.counts += 1
        return len((self.render(prompt) if isinstance(prompt, Prompt) else prompt).split())


class CountingEmbedder:
    """Hashes words into a small vector; counts the texts it embeds."""

    name = "counting"
    dimension = 16
    max_tokens = 512

    def __init__(self) -> None:
        self.texts = 0

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in re.finditer(r"\S+", text)]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += len(texts)
        rows = np.zeros((len(texts), 16), dtype=np.float32)
        for row, text in zip(rows, texts):
            for word in text.lower().split():
                row[hash(word) % 16] += 1.0
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def _hits(k: int) -> list[Hit]:
    """``k`` passages of distinct files, two sentences each, best first."""
    return [Hit(text=f"Station {i} logs the tide at dawn. Its keeper number {i} writes it down.",
                path=f"/docs/station-{i}.md", page=None, lines=(1, 2), score=1.0 - i / (k + 1), chunk_id=i,
                chars=(0, 70))
            for i in range(k)]


QUESTION = "Who logs the tide at dawn?"


def test_k_1000_and_100000_pack_and_count_a_bounded_amount() -> None:
    for k in (1000, 100_000):
        model, embedder = WordCounter(n_ctx=2048), CountingEmbedder()
        built = build_packed_prompt(model, QUESTION, _hits(k), embedder, reserve=256, answer_prefix=ANSWER_PREFIX)
        kept = len(built.sources)
        assert 32 < kept < 200 and built.dropped_sources > 0
        # rounds of 32, 64, 128, 256 hits at most: each hit's sentences embedded once
        assert embedder.texts <= 4 * kept * 3 + 8
        # a galloping search per round: O(log k) counts each
        assert model.counts <= 80
        assert len(built.notices) == 1 and built.notices[0].startswith(
            f"{built.dropped_sources} of {kept + built.dropped_sources} sources did not fit the context")
        assert f"the {k - 256} lowest-ranked of {k} retrieved passages were not packed" in built.notices[0]


def test_the_prompt_keeps_what_packing_every_hit_kept() -> None:
    hits = _hits(300)
    old = build_prompt(WordCounter(n_ctx=2048), QUESTION, pack(QUESTION, hits, CountingEmbedder()), reserve=256,
                       answer_prefix=ANSWER_PREFIX)
    new = build_packed_prompt(WordCounter(n_ctx=2048), QUESTION, hits, CountingEmbedder(), reserve=256,
                              answer_prefix=ANSWER_PREFIX)
    assert new.text == old.text and new.sources == old.sources and new.prompt_tokens == old.prompt_tokens
    assert 0 < len(new.sources) < 300


def test_a_normal_k_packs_every_hit_at_once_as_before() -> None:
    hits = _hits(FIRST_ROUND)
    embedder = CountingEmbedder()
    new = build_packed_prompt(WordCounter(n_ctx=4096), QUESTION, hits, embedder, reserve=256)
    old = build_prompt(WordCounter(n_ctx=4096), QUESTION, pack(QUESTION, hits, CountingEmbedder()), reserve=256)
    assert new == old and len(new.sources) == FIRST_ROUND
    assert embedder.texts == 1 + 2 * FIRST_ROUND  # one batch: the question and every sentence


def test_duplicates_are_still_dropped_against_every_kept_excerpt() -> None:
    hits = _hits(5)
    copies = [Hit(text=h.text, path=h.path.replace("station", "copy"), page=None, lines=h.lines, score=0.1,
                  chunk_id=100 + h.chunk_id, chars=h.chars) for h in hits]
    packed = pack(QUESTION, [*hits, *copies], None, PackingOptions())
    assert [h.path for h in packed] == [h.path for h in hits]
