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
from runtime.llm import row_cost
from runtime.llm.llama_engine import LlamaEngine
from runtime.llm.lookup import Drafter, draft, draft_length, replay
from runtime.llm.model import Model
from tests.slow import slow_after_first

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


def test_a_draft_is_as_long_as_its_expected_acceptance_pays_for_under_the_row_cost() -> None:
    assert draft_length(0.95, 0.1, 16) == 15  # cheap rows, confident: a long draft
    assert draft_length(0.8, 0.25, 16) == 3
    assert draft_length(0.6, 0.5, 16) == 1
    assert draft_length(0.5, 0.5, 16) == 0  # a draft token costs what it is expected to save
    assert draft_length(0.99, 0.1, 2) == 2  # no longer than what the match offers


def test_the_drafter_shrinks_and_stops_drafting_after_rejections_and_grows_after_acceptance() -> None:
    # the answer walks a cycle the prompt holds twice: every tail has a full draft on offer
    def after(token: int) -> int:
        return 100 + (token - 99) % 40

    drafter = Drafter(list(range(100, 140)) * 2, max_tokens=8, ngram=3, row_cost=0.25)
    token = 100

    def step(keep_all: bool) -> int:
        nonlocal token
        guess = drafter.propose(token, room=8)
        kept = len(guess) if keep_all else 0  # the model rejects the first draft token
        drafter.record(guess, kept)
        token = after(guess[kept - 1] if kept else token)
        return len(guess)

    rejected = [step(keep_all=False) for _ in range(8)]
    assert rejected[0] >= 2 and rejected[1] < rejected[0] and rejected[2] == 0
    assert max(rejected[2:]) <= 1 and rejected.count(0) >= 4  # at most a one-token probe now and then
    assert drafter.accepted == 0 and drafter.drafted == sum(rejected) == sum(d for d, _ in drafter.drafts)
    idle = [step(keep_all=True) for _ in range(30)]  # no drafts: the evidence fades, then drafts resume
    assert idle[0] == 0 and idle[-1] > 0
    grown = [step(keep_all=True) for _ in range(8)]
    assert grown == sorted(grown) and grown[-1] == 8
    fixed = Drafter(list(range(100, 140)) * 2, max_tokens=8, ngram=3, adaptive=False)
    assert len(fixed.propose(100, room=8)) == 8


# slow: 80 tokens on each model; the fast path keeps rt ask's identity with and without lookup (below)
@pytest.mark.slow
@pytest.mark.parametrize("model", ["smollm2_path", "gemma_path"])
def test_greedy_answers_are_token_for_token_identical_with_and_without_prompt_lookup(
        model: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(model)
    # prefix_cache off: the second run would restore the saved prompt prefix and process the rest
    # in other batches, which moves llama.cpp's logits as much as lookup's batches do
    with Model(path, LoadOptions(n_ctx=2048, threads=1, isolate=False, prefix_cache=False)) as m:
        prompt = rag_prompt(m, QUESTION)
        engine = m._idle_engine()
        assert isinstance(engine, LlamaEngine)  # isolate=False: the engine itself, in this process
        # from a fresh cache both times: see docs/asking.md on a prompt reused from the KV cache
        plain = GenerateOptions(max_tokens=80, prompt_lookup=False)
        # the fixed policy drafts every match: the most batches to check (the adaptive one
        # drafts a subset of them, and on SmolLM2 hardly any)
        with_lookup = replace(plain, prompt_lookup=True, lookup_adaptive=False)
        n = len(engine.prompt_tokens(prompt))
        first = _run(engine, prompt, plain)
        first_tokens = engine.cached_tokens[n:]
        engine.clear_cache()
        second = _run(engine, prompt, with_lookup)
        second_tokens = engine.cached_tokens[n:]
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
    # SmolLM2's measured row cost (about 0.6) makes no draft pay; the model process reads this
    # cheaper one from RT_HOME's cache instead of measuring, so it drafts
    key = row_cost.cache_key(smollm2_path, LoadOptions(), LoadOptions().max_draft)
    row_cost.write(row_cost.cache_file(key), key, row_cost.Measurement(1.0, 1.4, 8, 1, 0.0))
    results = {}
    for flag in ("--prompt-lookup", "--no-prompt-lookup"):
        result = CliRunner().invoke(cli, ["ask", "--no-rag", "--json", "--model", str(smollm2_path),
                                          "--max-tokens", "40", "--threads", "1", flag, question])
        assert result.exit_code == 0, result.stderr
        results[flag] = json.loads(result.stdout)
    on, off = results["--prompt-lookup"], results["--no-prompt-lookup"]
    assert on["answer"] == off["answer"]
    assert on["usage"]["draft_tokens"] >= on["usage"]["accepted_tokens"] > 0
    assert off["usage"]["draft_tokens"] == off["usage"]["accepted_tokens"] == 0


@pytest.mark.slow  # two long greedy runs; the fast path keeps the adaptive drafter's replay and unit tests
def test_on_a_real_model_the_adaptive_policy_wastes_fewer_drafted_tokens_than_drafting_every_match(
        smollm2_path: Path) -> None:
    with Model(smollm2_path, LoadOptions(n_ctx=2048, threads=2, isolate=False, prefix_cache=False)) as m:
        prompt = rag_prompt(m, QUESTION)
        engine = m._idle_engine()
        assert isinstance(engine, LlamaEngine)  # isolate=False: the engine itself, in this process
        fixed_options = GenerateOptions(max_tokens=60, prompt_lookup=True, lookup_adaptive=False)
        fixed = _run(engine, prompt, fixed_options)[1]
        fixed_drafts = list(engine.last_drafts)
        engine.clear_cache()
        adaptive = _run(engine, prompt, replace(fixed_options, lookup_adaptive=True))[1]
        adaptive_drafts = list(engine.last_drafts)
    assert fixed.draft_tokens == sum(d for d, _ in fixed_drafts)
    assert fixed.accepted_tokens == sum(a for _, a in fixed_drafts)
    assert adaptive.draft_tokens == sum(d for d, _ in adaptive_drafts)
    rejected = fixed.draft_tokens - fixed.accepted_tokens
    assert rejected > 0
    assert adaptive.draft_tokens - adaptive.accepted_tokens < rejected  # fewer tokens thrown away
    assert len(adaptive_drafts) < len(fixed_drafts)  # fewer verification batches


@pytest.mark.parametrize("adaptive", slow_after_first([True, False]))
def test_replaying_a_greedy_answer_offline_gives_the_drafts_the_engine_verified(
        smollm2_path: Path, adaptive: bool) -> None:
    """The drafter is driven by tokens only: fed a greedy answer's tokens without the model
    (bench_lookup's 7B projection does this), it drafts and keeps what the engine did."""
    m_tokens = 48
    with Model(smollm2_path, LoadOptions(n_ctx=2048, threads=1, isolate=False, prefix_cache=False)) as m:
        prompt = rag_prompt(m, QUESTION)
        engine = m._idle_engine()
        assert isinstance(engine, LlamaEngine)  # isolate=False: the engine itself, in this process
        tokens = engine.prompt_tokens(prompt)
        plain = _run(engine, prompt, GenerateOptions(max_tokens=m_tokens + 1))[1]
        answer = engine.cached_tokens[len(tokens):]  # every token but the last, which is never decoded
        assert len(answer) == min(m_tokens, plain.completion_tokens)
        engine.clear_cache()
        options = GenerateOptions(max_tokens=m_tokens, prompt_lookup=True, lookup_adaptive=adaptive,
                                  lookup_row_cost=0.1)
        _run(engine, prompt, options)
        verified = list(engine.last_drafts)
        rows = engine.n_outputs - 1
    drafter = Drafter(tokens, options.lookup_draft, options.lookup_ngram, 0.1, adaptive)
    assert replay(drafter, answer, m_tokens, rows) == verified
    assert sum(a for _, a in verified) > 0
