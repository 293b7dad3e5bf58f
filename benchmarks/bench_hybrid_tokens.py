"""How often the hybrid's greedy answer differs from the repacked weights' alone (issue 20).

    python benchmarks/bench_hybrid_tokens.py MODEL.gguf [MODEL.gguf ...]

For 8 short chat questions (ChatML for a file named SmolLM*, Gemma's turns otherwise), 64
greedy tokens on one thread: the hybrid (prompt on the mapped
weights, answer on repacked ones, ``LoadOptions(repack=True)``) against the repacked weights
alone, which decode the prompt one token at a time too (their AMX kernels crash on batches on
the machine this was written on). Prints, per model, the first differing token per question
(``None``: the same 64 tokens). Repacked weights that crash on this CPU crash this script.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.config import GenerateOptions, LoadOptions  # noqa: E402
from runtime.llm.llama_engine import LlamaEngine  # noqa: E402
from tests.runtime.hybrid_reference import repacked_greedy  # noqa: E402

QUESTIONS = ["What is the boiling point of water, and why does it change on a mountain?",
             "Explain how a bicycle gear works.", "Who wrote Pride and Prejudice, and what is it about?",
             "Give three tips for keeping a houseplant alive.", "Why is the sky blue?",
             "How do I make a cup of tea?", "What does a lease renewal clause usually say?",
             "Summarise the water cycle in two sentences."]
TOKENS = 64


def first_differences(path: Path) -> list[int | None]:
    firsts: list[int | None] = []
    with LlamaEngine(path, LoadOptions(n_ctx=512, threads=1, prefix_cache=False, repack=True)) as engine:
        for question in QUESTIONS:
            prompt = (f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n" if "SmolLM" in path.name
                      else f"<start_of_turn>user\n{question}<end_of_turn>\n<start_of_turn>model\n")
            tokens = engine.prompt_tokens(prompt)
            engine.clear_cache()
            for _ in engine.stream(prompt, GenerateOptions(max_tokens=TOKENS + 1, prompt_lookup=False)):
                pass
            hybrid = list(engine.cached_tokens[len(tokens):])
            reference = repacked_greedy(path, tokens, TOKENS)
            n = min(len(hybrid), len(reference))
            firsts.append(next((i for i in range(n) if hybrid[i] != reference[i]), None))
    return firsts


def main() -> None:
    for name in sys.argv[1:]:
        print(Path(name).name, f"first differing token per question (None: the same {TOKENS}):",
              first_differences(Path(name)), flush=True)


if __name__ == "__main__":
    main()
