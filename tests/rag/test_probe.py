"""The model's yes/no coverage probe on the real SmolLM2 and Gemma 3 270M: P(yes) read from the
next-token logits after the sources and the question, the probe's tokens rolled out of the KV
cache, and the answer that follows reusing the shared prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.config import GenerateOptions, LoadOptions
from runtime.llm.chat_view import ChatModel, PlainChat, chat_view
from runtime.llm.model import Model
from runtime.rag.config import CoverageOptions
from runtime.rag.coverage import Coverage, needs_probe
from runtime.rag.probe import PROBE_QUESTION, ask_model, probe_messages, split_probe
from runtime.rag.prompt import ANSWER_PREFIX, BuiltPrompt, build_prompt
from runtime.rag.rag import RAG

QUESTION = "How often must the Velomax chain be oiled?"
NO_PREFIX_CACHE = LoadOptions(n_ctx=2048, prefix_cache=False, threads=1)  # pinned: greedy text is compared
ALWAYS = CoverageOptions(probe_weight=10.0)  # every retrieved question is within reach of the probe


def test_the_probe_shares_the_answer_prompt_up_to_its_own_question() -> None:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "Question: q\nSources: ..."}]
    probed = probe_messages(messages)
    assert probed[0] == messages[0] and probed[1]["content"].startswith(messages[1]["content"])
    assert probed[1]["content"].endswith(PROBE_QUESTION) and messages[1]["content"].endswith("...")


def test_the_probe_is_asked_only_where_it_could_change_the_decision() -> None:
    options = CoverageOptions(term_weight=1.0, min_score=1.0, probe_weight=0.4)
    near = {"best_similarity": 0.5, "term_share": 0.4, "chunks": 10}
    assert needs_probe(near, options)
    assert not needs_probe({**near, "term_share": 0.8}, options)  # 1.3: covered whatever it says
    assert not needs_probe({**near, "term_share": 0.1}, options)  # 0.6: declined whatever it says
    assert not needs_probe(near, CoverageOptions(term_weight=1.0, min_score=1.0))  # weight 0: never
    missing = {**near, "missing_terms": ["auvergne"], "missing_share": 0.9}
    assert not needs_probe(missing, options)


def _answer_prompt(rag: RAG, view: ChatModel) -> BuiltPrompt:
    prefix = (" " if isinstance(view, PlainChat) else "") + ANSWER_PREFIX  # as the RAG starts it
    return build_prompt(view, QUESTION, rag.retrieve(QUESTION), reserve=48, answer_prefix=prefix)


# slow: two 48-token answers a model; the fast path keeps the probe in the RAG (below)
@pytest.mark.slow
@pytest.mark.parametrize("model_fixture", ["smollm2_path", "gemma_path"])
def test_after_the_probe_the_answer_is_token_for_token_the_same(
        model_fixture: str, index_dir: Path, request: pytest.FixtureRequest) -> None:
    model_path = request.getfixturevalue(model_fixture)
    greedy = GenerateOptions(max_tokens=48, temperature=0.0)
    with RAG.open(model_path, index_dir, load=NO_PREFIX_CACHE) as rag:
        view = chat_view(rag.model)  # Gemma's GGUF is a base model: the plain layout
        built = _answer_prompt(rag, view)
        shared, probe = split_probe(view, built)
        assert built.text.startswith(shared) and probe.lstrip().startswith(PROBE_QUESTION)
        result = ask_model(rag.model, view, built)
        assert isinstance(rag.model, Model)
        probed = rag.model.complete(built.text, greedy)
    with Model(model_path, NO_PREFIX_CACHE) as fresh:
        plain = fresh.complete(built.text, greedy)
    assert result is not None and 0.0 <= result.p_yes <= 1.0
    assert 0.0 <= result.yes_mass + result.no_mass <= 1.0 + 1e-9
    assert result.cached_tokens == 0 and result.prompt_tokens > 100
    # the probe's tokens left the KV cache: the answer decoded only its own tail after the
    # shared prefix, and greedy decoding wrote exactly what a fresh model writes
    assert probed.cached_tokens > 0.8 * probed.prompt_tokens and probed.prompt_tokens - probed.cached_tokens < 20
    assert probed.text == plain.text and probed.completion_tokens == plain.completion_tokens > 0


def test_the_rag_shows_the_probe_in_the_coverage_signals_and_answers_from_its_cache(
        index_dir: Path, smollm2_path: Path) -> None:
    with RAG.open(smollm2_path, index_dir, load=NO_PREFIX_CACHE) as rag:
        rag.coverage = ALWAYS
        answer = rag.ask(QUESTION, options=GenerateOptions(max_tokens=16), answer_anyway=True)
    assert answer.coverage is not None
    signals = answer.coverage.signals
    assert 0.0 <= signals["model_yes"] <= 1.0 and signals["probe_seconds"] > 0 and signals["probe_tokens"] > 100
    assert "the model says yes at" in answer.coverage.reason and answer.coverage.to_dict()["signals"]["model_yes"]
    if answer.from_documents:  # the answer reused what the probe decoded
        assert answer.usage.cached_tokens > 0.8 * answer.usage.prompt_tokens


def test_the_probe_weighs_in_the_score() -> None:
    from runtime.rag.coverage import decide

    signals = {"best_similarity": 0.5, "term_share": 0.5, "chunks": 10}
    options = CoverageOptions(term_weight=1.0, min_score=1.0, probe_weight=0.4)
    said_yes: Coverage = decide({**signals, "model_yes": 0.9}, options)
    said_no = decide({**signals, "model_yes": 0.1}, options)
    assert said_yes.covered and not said_no.covered
    assert said_yes.signals["score"] == pytest.approx(1.16) and said_no.signals["score"] == pytest.approx(0.84)
    assert decide(signals, options).covered  # no probe asked: the score stands as it is
