"""Prompt-lookup decoding: drafts from the prompt, verified in one batch, never change a greedy answer."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli

from runtime.config import GenerateOptions, LoadOptions
from runtime.errors import UnsupportedModelError
from runtime.llm.llama_engine import LlamaEngine
from runtime.llm.lookup import draft
from runtime.llm.model import Model

SOURCES = """[1] notes/lease.md lines 1-6
The lease for the flat at 14 Rue des Lilas, Lyon, runs from 1 March 2024 to 28 February 2027.
The monthly rent is 1,240 euros, due on the fifth day of each month, paid to Agence Moreau.
Renewal must be requested in writing at least three months before the end date.
[2] notes/boiler.md lines 3-5
The boiler is a Vaillant ecoTEC plus 825, serviced every October by Chauffage Dupont.
Its serial number is 21163500100257 and the warranty runs until 12 June 2028."""

QUESTION = "Quote the sources: what is the address, the rent, who is paid, and the boiler's serial number?"


def rag_prompt(model: Model, question: str) -> str:
    """A RAG-shaped prompt: the model's chat template, or plain text for a base model (Gemma 270M)."""
    system = "Answer from the sources, copying their words."
    user = f"Sources:\n{SOURCES}\n\nQuestion: {question}"
    try:
        return model.chat_prompt([{"role": "system", "content": system}, {"role": "user", "content": user}])
    except UnsupportedModelError:
        return f"{system}\n\n{user}\nAnswer:"


def test_a_draft_is_what_followed_the_last_ngram_earlier_in_the_text() -> None:
    history = [5, 6, 7, 8, 9, 1, 2, 6, 7]
    assert draft(history, max_tokens=3, ngram=2) == [8, 9, 1]
    assert draft(history, max_tokens=8, ngram=3) == [8, 9, 1, 2, 6, 7]  # falls back to the 2-gram
    assert draft([1, 2, 3], max_tokens=4, ngram=2) == []


@pytest.mark.parametrize("model", ["smollm2_path", "gemma_path"])
def test_greedy_answers_are_token_for_token_identical_with_and_without_prompt_lookup(
        model: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(model)
    # prefix_cache off: the second run would restore the saved prompt prefix and process the rest
    # in other batches, which moves llama.cpp's logits as much as lookup's batches do
    with Model(path, LoadOptions(n_ctx=2048, threads=2, isolate=False, prefix_cache=False)) as m:
        prompt = rag_prompt(m, QUESTION)
        engine = m._idle_engine()
        # from a fresh cache both times: see docs/asking.md on a prompt reused from the KV cache
        plain = GenerateOptions(max_tokens=80, prompt_lookup=False)
        with_lookup = replace(plain, prompt_lookup=True)
        n = len(engine.prompt_tokens(prompt))
        first = _run(engine, prompt, plain)
        first_tokens = engine._cached[n:]
        engine._forget_cache()
        second = _run(engine, prompt, with_lookup)
        second_tokens = engine._cached[n:]
    assert first[0] == second[0]
    assert first[1].completion_tokens == second[1].completion_tokens
    shared = min(len(first_tokens), len(second_tokens))
    assert first_tokens[:shared] == second_tokens[:shared]
    assert second[1].draft_tokens > 0 and second[1].accepted_tokens > 0
    assert first[1].draft_tokens == 0


def _run(engine: LlamaEngine, prompt: str, options: GenerateOptions):
    gen = engine.stream(prompt, options)
    pieces = []
    while True:
        try:
            pieces.append(next(gen))
        except StopIteration as stop:
            return "".join(pieces), stop.value


def test_rt_ask_json_reports_drafted_and_accepted_tokens_with_prompt_lookup(smollm2_path: Path) -> None:
    question = (f"Copy this line exactly: {SOURCES.splitlines()[1]}")
    results = {}
    for flag in ("--prompt-lookup", "--no-prompt-lookup"):
        result = CliRunner().invoke(cli, ["ask", "--no-rag", "--json", "--model", str(smollm2_path),
                                          "--max-tokens", "40", "--threads", "2", flag, question])
        assert result.exit_code == 0, result.stderr
        results[flag] = json.loads(result.stdout)
    on, off = results["--prompt-lookup"], results["--no-prompt-lookup"]
    assert on["answer"] == off["answer"]
    assert on["usage"]["draft_tokens"] >= on["usage"]["accepted_tokens"] > 0
    assert off["usage"]["draft_tokens"] == off["usage"]["accepted_tokens"] == 0
