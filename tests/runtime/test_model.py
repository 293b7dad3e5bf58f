"""The Python API on the real llama.cpp and the real SmolLM2 / Gemma 3 models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.config import GenerateOptions, LoadOptions
from runtime.errors import ContextOverflowError, InputError, UnsupportedModelError
from runtime.llm.chat_template import question_messages
from runtime.llm.model import Model

FRANCE = "What is the capital of France?"
# One thread: on a shared, busy 2-core machine two OpenMP threads wait on each other at every
# barrier (measured 6x slower than one); the tests check behaviour, not speed.
THREADS = 1


@pytest.fixture(scope="module")
def model(smollm2_path: Path) -> Iterator[Model]:
    """SmolLM2 in its own process (the default, isolate=True)."""
    with Model(smollm2_path, LoadOptions(n_ctx=1024, threads=THREADS)) as m:
        yield m


@pytest.fixture(scope="module")
def small_ctx_model(smollm2_path: Path) -> Iterator[Model]:
    """SmolLM2 in this process (isolate=False), with the smallest context llama.cpp allows."""
    with Model(smollm2_path, LoadOptions(n_ctx=256, isolate=False, threads=THREADS)) as m:
        yield m


def ask(model: Model, question: str, **options: object) -> str:
    prompt = model.chat_prompt(question_messages(question))
    return model.complete(prompt, GenerateOptions(max_tokens=32, **options)).text  # type: ignore[arg-type]


def test_it_answers_that_the_capital_of_france_is_paris(model: Model) -> None:
    assert "Paris" in ask(model, FRANCE)


def test_greedy_generation_is_deterministic(model: Model) -> None:
    assert ask(model, "Name three colours.") == ask(model, "Name three colours.")


def test_seeded_sampling_is_reproducible(model: Model) -> None:
    first = ask(model, "Write a short poem.", temperature=0.9, seed=7)
    assert first == ask(model, "Write a short poem.", temperature=0.9, seed=7)


def test_top_p_zero_is_the_strictest_setting_not_off(model: Model) -> None:
    greedy = ask(model, "Write a short poem.")
    assert ask(model, "Write a short poem.", temperature=1.5, top_k=0, top_p=0.0, seed=3) == greedy


def test_streamed_pieces_join_to_the_completion_text(model: Model) -> None:
    prompt = model.chat_prompt(question_messages("Describe the sea in two sentences."))
    stream = model.stream(prompt, GenerateOptions(max_tokens=24))
    pieces = list(stream)
    assert len(pieces) > 3
    assert stream.completion is not None
    assert "".join(pieces) == stream.completion.text
    assert stream.completion.text == model.complete(prompt, GenerateOptions(max_tokens=24)).text


def test_kv_cache_prefix_is_reused_with_the_same_output(model: Model) -> None:
    prompt = model.chat_prompt(question_messages(FRANCE))
    model.complete("Hello", GenerateOptions(max_tokens=2))  # shares no prefix: a cold cache
    cold = model.complete(prompt)
    assert cold.cached_tokens == 0
    model.complete(model.chat_prompt(question_messages("What is the capital of Italy?")))
    warm = model.complete(prompt)
    assert warm.cached_tokens > 10  # the system prompt and the start of the question
    assert warm.text == cold.text
    assert warm.prompt_tokens == cold.prompt_tokens


def test_stop_string_ends_the_text_before_it(model: Model) -> None:
    completion = model.complete(model.chat_prompt(question_messages(FRANCE)), GenerateOptions(stop=("Paris",)))
    assert completion.finish_reason == "stop"
    assert "Paris" not in completion.text
    assert completion.text.startswith("The capital of France is")


def test_max_tokens_ends_with_finish_reason_length(model: Model) -> None:
    completion = model.complete(model.chat_prompt(question_messages("Tell me a long story.")),
                                GenerateOptions(max_tokens=5))
    assert (completion.completion_tokens, completion.finish_reason) == (5, "length")


def test_an_abandoned_stream_does_not_disturb_the_next_call(model: Model) -> None:
    prompt = model.chat_prompt(question_messages(FRANCE))
    expected = model.complete(prompt).text
    stream = model.stream(model.chat_prompt(question_messages("Tell me a long story.")))
    next(stream), next(stream)  # then walk away from it
    assert model.complete(prompt).text == expected
    model.stream(prompt)  # never iterated at all
    assert model.count_tokens("hello world") == 2
    assert model.complete(prompt).text == expected


def test_reading_the_pid_does_not_stop_a_stream(model: Model) -> None:
    stream = model.stream(model.chat_prompt(question_messages(FRANCE)), GenerateOptions(max_tokens=6))
    first = next(stream)
    assert model.pid != os.getpid()  # the model runs in its own process
    rest = list(stream)
    assert stream.completion is not None and stream.completion.completion_tokens == 6
    assert first + "".join(rest) == stream.completion.text


def test_a_prompt_longer_than_the_context_raises_with_the_numbers(model: Model) -> None:
    with pytest.raises(ContextOverflowError) as caught:
        model.stream("word " * 1500)
    assert caught.value.n_ctx == model.n_ctx == 1024
    assert caught.value.tokens > 1024
    assert "1024" in str(caught.value) and "--ctx" in str(caught.value)
    assert "Paris" in ask(model, FRANCE)  # the model is still usable


def test_an_empty_prompt_raises_instead_of_crashing_the_model(model: Model) -> None:
    # SmolLM2 adds no BOS: "" has no tokens, and sampling without logits made llama.cpp abort
    with pytest.raises(InputError, match="empty"):
        model.complete("")
    assert "Paris" in ask(model, FRANCE)  # the model process is still alive


def test_tokenize_detokenize_round_trip(model: Model) -> None:
    text = "héllo wörld <|im_end|>"
    tokens = model.tokenize(text)
    assert model.detokenize(tokens) == text
    assert model.count_tokens(text) == len(tokens)


def test_chat_prompt_renders_the_gguf_template(model: Model) -> None:
    prompt = model.chat_prompt([{"role": "user", "content": "Hi"}])
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")


def test_in_process_engine_gives_the_same_answer(small_ctx_model: Model, model: Model) -> None:
    assert ask(small_ctx_model, FRANCE) == ask(model, FRANCE)


def test_generation_stops_with_length_when_the_context_is_full(small_ctx_model: Model) -> None:
    n_ctx = small_ctx_model.n_ctx
    prompt = "Count: " + " ".join(str(i) for i in range(1, 84))  # 242 tokens: the window fills soon
    n_prompt = len(small_ctx_model.tokenize(prompt, add_special=True))
    assert n_prompt < n_ctx
    completion = small_ctx_model.complete(prompt, GenerateOptions(max_tokens=1000))
    assert completion.finish_reason == "length"
    assert completion.prompt_tokens + completion.completion_tokens == n_ctx + 1  # the last one is never decoded


def test_q8_0_kv_cache_works(smollm2_path: Path) -> None:
    with Model(smollm2_path, LoadOptions(n_ctx=512, kv_type="q8_0", isolate=False, threads=THREADS)) as m:
        assert "Paris" in ask(m, FRANCE)


def test_gemma_a_second_architecture_loads_and_generates(gemma_path: Path) -> None:
    with Model(gemma_path, LoadOptions(n_ctx=512, threads=THREADS)) as gemma:
        assert gemma.info.architecture == "gemma3"
        with pytest.raises(UnsupportedModelError, match="no chat template"):
            gemma.chat_prompt([{"role": "user", "content": FRANCE}])  # a base model
        prompt = "The capital of France is"
        completion = gemma.complete(prompt, GenerateOptions(max_tokens=8))
        assert completion.completion_tokens > 0 and completion.text.strip()
        assert completion.prompt_tokens == len(gemma.tokenize(prompt, add_special=True))
        assert completion.text == gemma.complete(prompt, GenerateOptions(max_tokens=8)).text
