"""The official `openai` client against `rt serve` running as a real subprocess on loopback."""

# The openai client types every response field as Optional and every message as a TypedDict;
# these tests read fields the server was just shown to fill, so those checks are off here only.
# mypy: disable-error-code="index, union-attr, arg-type, call-overload, operator, attr-defined"

from __future__ import annotations

import concurrent.futures
import math

import openai
import pytest

from tests.postgres import postgres_in_full_run
from tests.serve.conftest import Server

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def client(rt_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=rt_server.url, api_key="unused", max_retries=0)


@pytest.fixture
def any_client(any_rt_server: Server) -> openai.OpenAI:
    """A client of `rt serve` over a folder index, then over a PostgreSQL one."""
    return openai.OpenAI(base_url=any_rt_server.url, api_key="unused", max_retries=0)


def test_models_lists_the_chat_model_with_its_context_and_the_embedding_model(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list().data}
    assert "SmolLM2-135M-Instruct.Q4_1" in models
    assert models["SmolLM2-135M-Instruct.Q4_1"].model_extra["context_length"] == 2048
    assert "all-MiniLM-L6-v2" in models


def test_chat_streamed_and_not_give_the_same_greedy_answer(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="default", messages=QUESTION, max_tokens=12, temperature=0)
    text = whole.choices[0].message.content
    assert text.strip()
    assert whole.usage.completion_tokens > 0 and whole.usage.prompt_tokens > 10

    chunks = list(client.chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1", messages=QUESTION,
                                                 max_tokens=12, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_completions_continue_a_raw_prompt(client: openai.OpenAI) -> None:
    answer = client.completions.create(model="default", prompt="The capital of France is", max_tokens=6)
    assert answer.choices[0].text.strip()
    assert answer.choices[0].finish_reason in ("stop", "length")


def test_embeddings_are_normalised_minilm_vectors(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="all-MiniLM-L6-v2",
                                      input=["the boiler service", "servicing the boiler", "tomato garden"])
    vectors = [d.embedding for d in result.data]
    assert result.model == "all-MiniLM-L6-v2" and len(vectors) == 3 and len(vectors[0]) == 384
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-3) for v in vectors)

    def cosine(a: list[float], b: list[float]) -> float:
        return math.fsum(x * y for x, y in zip(a, b))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])


@postgres_in_full_run
def test_rag_answers_with_sources_and_coverage_at_the_top_level(any_client: openai.OpenAI) -> None:
    client = any_client
    question = [{"role": "user", "content": "When does the lease of the flat renew?"}]
    answer = client.chat.completions.create(model="default", messages=question, max_tokens=24,
                                            extra_body={"rag": {"k": 2}})
    extra = answer.model_extra
    assert extra["sources"][0]["path"].endswith("lease.md")
    assert extra["sources"][0]["n"] == 1 and "Harbour Street" in extra["sources"][0]["text"]
    assert extra["coverage"]["covered"] is True and "reason" in extra["coverage"]
    assert isinstance(extra["claims"], list)
    assert answer.usage.prompt_tokens > 50
    assert answer.choices[0].message.content.startswith("According to [")

    chunks = list(client.chat.completions.create(model="default", messages=question, max_tokens=24, stream=True,
                                                 extra_body={"rag": {"k": 2}}))
    final = chunks[-1].model_extra
    assert final["sources"] == extra["sources"] and final["coverage"]["covered"] is True
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed.strip() == answer.choices[0].message.content


@postgres_in_full_run
def test_rag_on_a_question_the_documents_do_not_cover_says_so(any_client: openai.OpenAI) -> None:
    answer = any_client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Who painted the Mona Lisa?"}], max_tokens=16,
        extra_body={"rag": {}})
    assert answer.model_extra["coverage"]["covered"] is False
    assert "do not cover" in answer.choices[0].message.content
    assert answer.model_extra["sources"] == []


@pytest.mark.slow  # eight answers on one model
def test_eight_concurrent_streaming_clients_all_get_their_complete_answers(client: openai.OpenAI) -> None:
    subjects = ["France", "Italy", "Spain", "Germany", "Japan", "Egypt", "Canada", "Peru"]
    prompts = [[{"role": "user", "content": f"What is the capital of {s}?"}] for s in subjects]
    expected = [client.chat.completions.create(model="default", messages=p, max_tokens=10).choices[0].message.content
                for p in prompts]

    def stream(messages: list[dict[str, str]]) -> tuple[str, str | None]:
        own = openai.OpenAI(base_url=client.base_url, api_key="unused", max_retries=0)
        text, finish = "", None
        for chunk in own.chat.completions.create(model="default", messages=messages, max_tokens=10, stream=True):
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        return text, finish

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(stream, prompts))
    assert [text for text, _ in results] == expected
    assert all(finish in ("stop", "length") for _, finish in results)
