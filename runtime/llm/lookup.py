"""Prompt-lookup drafts: guess the next tokens by finding the last generated n-gram earlier in
the text (RAG answers copy names, numbers and phrases from their sources) and taking what
followed it. No draft model; the engine verifies a draft in one batch (see
:meth:`runtime.llm.llama_engine.LlamaEngine._generate`).

A draft only pays when the tokens it saves outweigh what verifying it costs: on a small,
compute-bound model each extra row of a batch costs a good part of a whole decode (the output
layer alone is 49,152 x 576 for SmolLM2, 262,144 x 640 for Gemma 3 270M, computed for every
row). :class:`Drafter` drafts only as many tokens as its running acceptance rate makes worth
verifying under a linear cost model (one decode of ``1 + k`` tokens costs ``1 + row_cost * k``
single-token decodes), per length of the n-gram that matched: it shrinks drafts after
rejections, stops drafting when a draft would be a loss, and grows them as they are accepted.
Its choices depend on the tokens only, never on timings, so a greedy answer is repeatable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# Beliefs about a draft token's acceptance before any is seen, and how fast they are forgotten.
PRIOR_ACCEPTANCE = 0.6  # optimistic enough that the first long match is tried when rows are cheap
PRIOR_WEIGHT = 2.0  # worth two draft tokens of evidence
DECAY = 0.9  # per verification: the last ~10 drafts of a match length decide
IDLE_DECAY = 0.98  # per match left undrafted: the evidence fades, so drafting is retried
MIN_GAIN = 1.05  # a draft must be expected to be 5% faster than decoding one token alone


def draft(history: Sequence[int], *, max_tokens: int, ngram: int) -> list[int]:
    """Up to ``max_tokens`` tokens that followed the latest earlier occurrence of the last
    ``ngram`` tokens of ``history`` (trying shorter n-grams down to 1); ``[]`` when none occurs."""
    index = NgramIndex(ngram)
    for token in history:
        index.append(token)
    return index.match(max_tokens)[1]


class NgramIndex:
    """The tokens so far, and where each 1- to ``ngram``-gram last ended, so that finding the
    latest earlier occurrence of the current tail costs a dictionary look-up, not a scan."""

    def __init__(self, ngram: int, tokens: Sequence[int] = ()) -> None:
        self.ngram = max(1, ngram)
        self.tokens: list[int] = []
        self._last_end: dict[tuple[int, ...], int] = {}  # n-gram -> end of its latest occurrence
        self._earlier: list[int | None] = []  # per n: end of the tail's previous occurrence
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        self.tokens.append(token)
        end = len(self.tokens)
        self._earlier = []
        for n in range(1, min(self.ngram, end) + 1):
            key = tuple(self.tokens[end - n:])
            self._earlier.append(self._last_end.get(key))
            self._last_end[key] = end

    def extend(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            self.append(token)

    def match(self, max_tokens: int) -> tuple[int, list[int]]:
        """The length of the longest tail n-gram seen before, and up to ``max_tokens`` tokens
        that followed its latest earlier occurrence; ``(0, [])`` when there is none."""
        if max_tokens <= 0:
            return 0, []
        for n in range(len(self._earlier), 0, -1):
            end = self._earlier[n - 1]
            if end is not None:
                return n, self.tokens[end:end + max_tokens]
        return 0, []


@dataclass
class _Evidence:
    """Decayed counts of draft tokens that were checked and accepted, for one match length."""

    accepted: float = 0.0
    checked: float = 0.0

    def rate(self) -> float:
        return (self.accepted + PRIOR_ACCEPTANCE * PRIOR_WEIGHT) / (self.checked + PRIOR_WEIGHT)

    def fade(self, factor: float) -> None:
        self.accepted *= factor
        self.checked *= factor


def draft_length(acceptance: float, row_cost: float, available: int) -> int:
    """The draft length (0 to ``available``) with the most tokens per unit of decode time, or 0
    when no draft is expected to beat decoding alone by :data:`MIN_GAIN`.

    A draft of ``k`` tokens, each kept with probability ``acceptance`` if all before it were,
    yields ``1 + p + ... + p^k`` tokens for ``1 + row_cost * k`` decodes."""
    best, best_gain = 0, MIN_GAIN
    expected, term = 1.0, 1.0
    for k in range(1, available + 1):
        term *= acceptance
        expected += term
        gain = expected / (1.0 + row_cost * k)
        if gain > best_gain:
            best, best_gain = k, gain
    return best


@dataclass
class Drafter:
    """Proposes the draft after each generated token and learns from what the model kept.

    ``adaptive=False`` drafts every match up to ``max_tokens`` (the fixed policy, kept to
    measure against). :attr:`drafts` records ``(drafted, accepted)`` per verification batch.
    """

    prompt: Sequence[int]
    max_tokens: int
    ngram: int = 3
    row_cost: float = 0.5
    adaptive: bool = True
    drafts: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._index = NgramIndex(self.ngram, self.prompt)
        self._evidence = [_Evidence() for _ in range(self.ngram + 1)]
        self._matched = 0

    @property
    def drafted(self) -> int:
        return sum(d for d, _ in self.drafts)

    @property
    def accepted(self) -> int:
        return sum(a for _, a in self.drafts)

    def propose(self, token: int, room: int) -> list[int]:
        """The draft to verify after ``token`` (just generated), at most ``room`` tokens."""
        self._index.append(token)
        matched, follow = self._index.match(min(room, self.max_tokens))
        self._matched = matched
        if not follow or not self.adaptive:
            return follow
        k = draft_length(self._evidence[matched].rate(), self.row_cost, len(follow))
        if k == 0:
            for evidence in self._evidence:
                evidence.fade(IDLE_DECAY)
        return follow[:k]

    def record(self, guess: Sequence[int], accepted: int) -> None:
        """What the model kept of the draft :meth:`propose` returned (its first ``accepted``
        tokens, then a token of its own, which the next :meth:`propose` receives)."""
        self._index.extend(guess[:accepted])
        if not guess:
            return
        self.drafts.append((len(guess), accepted))
        evidence = self._evidence[self._matched]
        evidence.fade(DECAY)
        evidence.accepted += accepted
        evidence.checked += accepted + (1 if accepted < len(guess) else 0)


def replay(drafter: Drafter, answer: Sequence[int], max_tokens: int, max_room: int) -> list[tuple[int, int]]:
    """The ``(drafted, accepted)`` batches ``drafter`` would verify while a model greedily
    generates ``answer`` (up to ``max_tokens`` tokens, the end of text not included), without
    the model: the drafter is driven by tokens only, and greedy verification keeps a draft's
    longest prefix that agrees with ``answer``. Steps as
    :meth:`runtime.llm.llama_engine.LlamaEngine._generate` does, with at most ``max_room`` draft
    tokens a batch (the context's ``n_outputs_max - 1``)."""
    i = 0  # the token just generated
    while i < len(answer) and i + 1 < max_tokens:  # after the last one the model ends the answer
        room = min(max_room, max_tokens - i - 2)
        guess = drafter.propose(answer[i], room)
        accepted = 0
        truth = answer[i + 1:i + 1 + len(guess)]
        while accepted < len(truth) and guess[accepted] == truth[accepted]:
            accepted += 1
        drafter.record(guess, accepted)
        i += accepted + 1
    return drafter.drafts
