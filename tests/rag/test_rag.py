"""The RAG library object end to end: the real SmolLM2, the real index (MiniLM, FAISS, SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.config import GenerateOptions, LoadOptions
from runtime.rag.config import PackingOptions
from runtime.rag.rag import ANSWERED_ANYWAY, RAG

# Model processes are shared across the session, emptied between tests (tests/shared_model.py)
pytestmark = pytest.mark.usefixtures("shared_model_process")

SHORT = GenerateOptions(max_tokens=48)
THREADS = 1  # pinned: answers' text is checked, and llama.cpp's numerics change with the thread count


@pytest.fixture(scope="module")
def rag(index_dir: Path, smollm2_path: Path) -> Iterator[RAG]:
    with RAG.open(smollm2_path, index_dir, load=LoadOptions(n_ctx=2048, threads=THREADS), options=SHORT) as opened:
        yield opened


@pytest.mark.parametrize("question, expected_file", [
    ("How do I descale the Zorblat 3000?", "zorblat.md"),
    ("How often must the Velomax chain be oiled?", "velomax.txt"),
])
def test_answer_cites_a_source_that_exists(rag: RAG, question: str, expected_file: str) -> None:
    answer = rag.ask(question)
    print(answer.answer)
    assert answer.covered and answer.from_documents
    assert answer.citations, f"no [n] citation in {answer.answer!r}"
    assert all(1 <= n <= len(answer.sources) for n in answer.citations), answer.citations
    assert Path(answer.sources[answer.citations[0] - 1].path).name == expected_file


def test_sources_are_the_retrieved_passages_in_rank_order(rag: RAG) -> None:
    question = "How long do Krellian tomatoes take to ripen?"
    retrieved = rag.index.search(question, rag.index.default_k)
    answer = rag.ask(question)
    assert answer.dropped == 0
    # packed: each source is an excerpt of a retrieved passage, in the passages' rank order
    ranks = [next(i for i, h in enumerate(retrieved) if h.path == s.path and s.text in h.text)
             for s in answer.sources]
    assert ranks[0] == 0 and ranks == sorted(ranks)
    assert [s.n for s in answer.sources] == list(range(1, len(answer.sources) + 1))
    assert answer.sources[0].similarity == pytest.approx(retrieved[0].similarity)


def test_stream_yields_the_answer_text(rag: RAG) -> None:
    stream = rag.stream("What must Quorra employees do with receipts?")
    text = "".join(stream)
    assert stream.answer is not None
    assert text.strip() == stream.answer.answer and text.startswith("According to [")
    usage, timings = stream.answer.usage, stream.answer.timings
    assert usage.prompt_tokens > 100 and 0 < usage.completion_tokens <= SHORT.max_tokens
    assert timings.retrieval > 0 and timings.prompt_processing > 0 and timings.generation > 0
    assert timings.query_embedding > 0 and timings.retrieval >= timings.query_embedding


def test_unrelated_question_is_not_covered(rag: RAG) -> None:
    answer = rag.ask("Who painted the Mona Lisa?")
    assert not answer.covered and not answer.from_documents
    assert answer.best_similarity is not None and answer.threshold is not None
    assert answer.best_similarity < answer.threshold
    assert "do not cover" in answer.answer
    assert answer.sources == [] and answer.usage.completion_tokens == 0  # the model was not asked


def test_answer_anyway_is_marked_and_has_no_sources(rag: RAG) -> None:
    answer = rag.ask("Who painted the Mona Lisa?", answer_anyway=True)
    assert not answer.covered and not answer.from_documents
    assert answer.answer.startswith(ANSWERED_ANYWAY)
    assert answer.sources == [] and answer.citations == []
    assert answer.usage.completion_tokens > 0


def test_tiny_context_drops_the_lowest_sources(index_dir: Path, smollm2_path: Path) -> None:
    # 512 tokens of context (llama.cpp's smallest step), 200 of them kept for the answer: the
    # four passages (about 420 prompt tokens) do not all fit
    with RAG.open(smollm2_path, index_dir, load=LoadOptions(n_ctx=512, threads=THREADS),
                  options=GenerateOptions(max_tokens=200, stop=(".",)),
                  packing=PackingOptions(enabled=False)) as small:  # whole chunks, as retrieved
        question = "How do I descale the Zorblat 3000?"
        retrieved = small.index.search(question, 4)
        answer = small.ask(question, k=4)
        n_ctx = small.model.n_ctx
    assert answer.dropped > 0 and len(answer.sources) + answer.dropped == len(retrieved)
    assert [s.text for s in answer.sources] == [h.text for h in retrieved[:len(answer.sources)]]
    assert answer.usage.prompt_tokens + 200 <= n_ctx
    assert f"{answer.dropped} of 4 sources did not fit the context" in answer.notices[0]


@pytest.mark.slow  # the fast path keeps the same two turns through `rt chat` (test_cli_ask.py)
def test_chat_reuses_the_cached_prefix(rag: RAG) -> None:
    chat = rag.chat()
    first = chat.ask("How do I descale the Zorblat 3000?")
    second = chat.ask("How many gears does the Velomax have?")
    assert first.covered and second.covered
    assert len(chat.history) == 2 and chat.history[0].question.startswith("How do I descale")
    # the system prompt and the first question are shared with the previous prompt
    assert second.usage.cached_tokens > 0
    assert second.usage.cached_tokens < second.usage.prompt_tokens


def test_model_without_chat_template_gets_a_plain_prompt(index_dir: Path, gemma_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """Gemma 3 270M's GGUF has no chat template: the RAG prompt falls back to Question/Answer."""
    with RAG.open(gemma_path, index_dir, load=LoadOptions(n_ctx=1024, threads=THREADS),
                  options=GenerateOptions(max_tokens=24)) as base:
        answer = base.ask("How do I descale the Zorblat 3000?", k=2)
    assert "no chat template" in caplog.text
    assert answer.covered and answer.answer.startswith("According to [")
    assert answer.usage.completion_tokens > 0 and 1 <= len(answer.sources) <= 2  # packing may merge them
