"""The model's yes/no probe needs next-token logits, which an OpenAI-compatible server does not
give rt: with generation on llama-cpp-python's server the probe is unavailable, the signals say
so, and coverage is decided from the other signals as if the probe were off."""

from __future__ import annotations

from pathlib import Path

from runtime.config import GenerateOptions
from runtime.llm.remote import RemoteModel
from runtime.rag.config import CoverageOptions
from runtime.rag.coverage import decide, measure
from runtime.rag.probe import UNAVAILABLE
from tests.serve.conftest import Server


def test_a_remote_engine_has_no_probe_and_coverage_stands_on_the_other_signals(
        llama_cpp_server: Server, corpus_index: Path) -> None:
    from runtime.index import Index
    from runtime.rag.rag import RAG

    question = "When is the boiler's next service due?"
    with RAG(RemoteModel(llama_cpp_server.url), Index.open(corpus_index),  # type: ignore[arg-type]
             coverage=CoverageOptions(probe_weight=10.0)) as rag:  # every question within the probe's reach
        answer = rag.ask(question, options=GenerateOptions(max_tokens=16))
        without_probe = decide(measure(question, rag.retrieve(question), rag.index), CoverageOptions())
    assert answer.coverage is not None
    signals = answer.coverage.signals
    assert signals["probe"] == UNAVAILABLE and "model_yes" not in signals
    assert "the model says" not in answer.coverage.reason
    assert answer.covered == without_probe.covered and answer.coverage.reason == without_probe.reason
