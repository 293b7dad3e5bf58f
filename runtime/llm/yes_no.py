"""A model's yes/no judgement read from its next-token logits, with nothing generated.

After a prompt that ends in a yes/no question and the start of the model's reply, P(yes) is the
softmax mass of the tokens that spell "yes" (``yes``, ``Yes``, ``YES``, with or without a leading
space) and P(no) that of the tokens spelling "no". :attr:`YesNo.p_yes` is P(yes) over
P(yes) + P(no): the model's choice between the two words, whatever else it would rather say.
The engine computes it from the logits of the prompt's last position
(:meth:`runtime.llm.llama_engine.LlamaEngine.yes_no`); this module holds the arithmetic, which
imports nothing heavy (the model process does not load numpy).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

YES_WORDS = ("yes", "Yes", "YES")
NO_WORDS = ("no", "No", "NO")


@dataclass(frozen=True)
class YesNo:
    """The model's answer to a yes/no prompt and what reading it cost.

    ``yes_mass`` and ``no_mass`` are the two words' probabilities over the whole vocabulary;
    ``p_yes`` is ``yes_mass / (yes_mass + no_mass)`` (0.5 when both are 0). ``prompt_tokens`` is
    the length of the probe prompt, ``cached_tokens`` how many of them the KV cache already held,
    so ``prompt_tokens - cached_tokens`` were decoded for the probe.
    """

    p_yes: float
    yes_mass: float
    no_mass: float
    prompt_tokens: int
    cached_tokens: int
    seconds: float


@runtime_checkable
class YesNoReader(Protocol):
    """An engine or model that can read a yes/no judgement after a prompt and roll it back."""

    def yes_no(self, prompt: str, probe: str) -> YesNo | None: ...


def spelling_tokens(tokenize: Callable[[str], list[int]], words: Sequence[str]) -> list[int]:
    """The ids of the single tokens that spell one of ``words``, bare or after a space.

    A spelling that takes several tokens ("YES" as "Y" + "ES") is left out: its first token
    starts other words too. Only when no spelling is a single token does the first token of the
    first word count.
    """
    spelled = [tokenize(text) for word in words for text in (word, " " + word)]
    found = {t[0] for t in spelled if len(t) == 1}
    return sorted(found or {t[0] for t in spelled[:1] if t})


def from_logits(logits: Sequence[float], yes_ids: Sequence[int], no_ids: Sequence[int]) -> tuple[float, float, float]:
    """``(p_yes, yes_mass, no_mass)`` from one position's logits (see :class:`YesNo`)."""
    top = max(logits)
    # without a shift, exp() of every logit is one C call per entry (Gemma 3: 262,144 of them,
    # 3x faster than shifting each); a shift is needed only where a sum could overflow
    shift = top if top > 600 else 0.0
    total = sum(map(math.exp, logits)) if not shift else math.fsum(math.exp(x - shift) for x in logits)
    yes = math.fsum(math.exp(logits[i] - shift) for i in yes_ids) / total
    no = math.fsum(math.exp(logits[i] - shift) for i in no_ids) / total
    return (yes / (yes + no) if yes + no > 0 else 0.5), yes, no
