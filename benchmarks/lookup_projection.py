"""Projecting prompt lookup's speed-up onto a model whose acceptance cannot be measured.

The 7B-shaped model (benchmarks/make_7b_gguf.py) has random weights: its answers are noise, so
how often a draft would be accepted cannot be measured on it. What can be measured is what a
verification batch costs on it. A projection therefore takes the drafts and acceptances of real
answers (SmolLM2's, Gemma's) and costs each step at the 7B's batch costs:

- **observed**: the ``(drafted, accepted)`` batches a small model actually verified;
- **replayed**: what rt's drafter would draft with the 7B's row cost, replayed offline over the
  small model's greedy answer tokens (:func:`runtime.llm.lookup.replay`; the drafter is driven
  by tokens only, and greedy verification keeps the prefix that agrees with the answer).

It is a projection: a 7B's own answers copy more or less from the sources than a 135M model's,
and the cost of the drafter itself and of sampling each row is left out (small next to a 7B's
decode of 0.3 to 3 s).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# The 7B shape's batch costs (cost of one decode of n tokens with logits for every row, / decode
# of 1) when bench_lookup is run without --model-7b: docs/speed.md "Verifying a draft" (one
# thread's CPU time after a 300-token prompt, least of 2; decode 1: 307 ms), and rt's measured
# row cost for it (runtime.llm.row_cost).
DOCUMENTED_7B_COSTS = {1: 1.0, 2: 1.79, 4: 3.20, 8: 5.78, 16: 6.16}
DOCUMENTED_7B_ROW_COST = 0.581
# The earlier wall-clock figures at 2 threads (docs/speed.md, the mean of two rounds taken while
# the machine ran about ten times slower than idle, so scheduling delays that every decode pays
# alike may have made rows look cheaper than they are), and their least-squares row cost: the
# projection is also printed under them, as the case of a 7B whose rows are cheap.
WALL_CLOCK_7B_COSTS = {1: 1.0, 2: 1.63, 4: 1.96, 8: 2.69, 16: 3.22}
WALL_CLOCK_7B_ROW_COST = 0.17


def batch_cost(costs: dict[int, float], n: int) -> float:
    """Cost of a batch of ``n`` tokens / a decode of 1, linear between the measured sizes (and
    along the last two beyond them)."""
    sizes = sorted(costs)
    if n in costs:
        return costs[n]
    lower = max([s for s in sizes if s < n], default=sizes[0])
    upper = min([s for s in sizes if s > n], default=sizes[-1])
    if lower == upper:  # beyond the table: extend its last segment
        lower, upper = sizes[-2], sizes[-1]
    slope = (costs[upper] - costs[lower]) / (upper - lower)
    return costs[lower] + slope * (n - lower)


def speedup(tokens: int, batches: Iterable[tuple[int, int]], costs: dict[int, float]) -> float:
    """Generation speed with these verified batches against decoding all ``tokens`` one by one,
    in units of a single decode: every step yields its accepted draft tokens plus one; steps
    without a draft cost one decode, a draft of ``d`` tokens costs a batch of ``1 + d``."""
    batches = list(batches)
    drafted_steps = sum(a + 1 for _, a in batches)
    cost = max(0, tokens - drafted_steps) + sum(batch_cost(costs, 1 + d) for d, _ in batches)
    return tokens / cost if cost else 1.0


def replay_answers(answers: Sequence[tuple[Sequence[int], Sequence[int]]], row_cost: float, *, max_tokens: int,
                   max_room: int, draft: int, ngram: int) -> tuple[int, list[tuple[int, int]]]:
    """Answer tokens in all and the batches rt's adaptive drafter would verify with ``row_cost``
    over each ``(prompt tokens, greedy answer tokens)``."""
    from runtime.llm.lookup import Drafter, replay

    tokens, batches = 0, []
    for prompt, answer in answers:
        drafter = Drafter(list(prompt), draft, ngram, row_cost)
        batches.extend(replay(drafter, answer, max_tokens, max_room))
        tokens += min(len(answer), max_tokens)
    return tokens, batches
