"""A prompt is data (issue 22 §2): ``Model.stream`` and ``count_tokens`` take a
:class:`~runtime.llm.types.Prompt` (messages and the answer's first words), which only the local
model renders, with the GGUF's own template; on the real SmolLM2 in its own process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from runtime.config import GenerateOptions, LoadOptions
from runtime.errors import GenerationError
from runtime.llm.chat_template import ChatPrompt, question_messages
from runtime.llm.model import Model
from runtime.llm.types import Prompt
from runtime.rag.prompt import ANSWER_PREFIX

# greedy text is compared: one thread, so a busy machine cannot change llama.cpp's numerics
GREEDY = GenerateOptions(max_tokens=12, temperature=0, threads=1)
MESSAGES = question_messages("What is the capital of France?")


@pytest.fixture(scope="module")
def model(smollm2_path: Path) -> Iterator[Model]:
    with Model(smollm2_path, LoadOptions(n_ctx=1024, threads=1)) as m:
        yield m


def test_the_model_process_is_launched_from_runtime_llm_child(model: Model) -> None:
    command = " ".join(psutil.Process(model.pid).cmdline())
    assert "runtime.llm.child" in command and "runtime.process.child" not in command


def test_a_prompt_renders_as_the_chat_template_then_its_prefix(model: Model) -> None:
    rendered = model.render(Prompt(MESSAGES, ANSWER_PREFIX))
    assert isinstance(rendered, ChatPrompt)  # the messages' text stays plain text when tokenized
    assert rendered == model.chat_prompt(MESSAGES) + ANSWER_PREFIX
    assert rendered.startswith("<|im_start|>system\n") and rendered.endswith("<|im_start|>assistant\n" + ANSWER_PREFIX)
    unopened = model.render(Prompt(MESSAGES, add_generation_prompt=False))
    assert unopened == model.chat_prompt(MESSAGES, add_generation_prompt=False)


def test_a_prompt_is_counted_as_its_rendering(model: Model) -> None:
    prompt = Prompt(MESSAGES, ANSWER_PREFIX)
    assert model.count_tokens(prompt) == model.count_tokens(model.chat_prompt(MESSAGES) + ANSWER_PREFIX)
    assert model.count_tokens(prompt) > model.count_tokens(Prompt(MESSAGES))


def test_streaming_a_prompt_is_streaming_its_rendering_and_reuses_the_kv_cache(model: Model) -> None:
    prompt = Prompt(MESSAGES)
    by_text = model.complete(model.chat_prompt(MESSAGES), GREEDY)
    stream = model.stream(prompt, GREEDY)
    text = "".join(stream)
    assert stream.completion is not None and text == stream.completion.text == by_text.text
    again = model.complete(prompt, GREEDY)
    assert again.text == by_text.text and again.cached_tokens > 0


def test_plain_text_is_still_generated_from_as_it_is(model: Model) -> None:
    text = "The capital of France is"
    completion = model.complete(text, GenerateOptions(max_tokens=4, temperature=0, threads=1))
    # no template around it: its own tokens, and a BOS where the model wants one
    assert completion.prompt_tokens - model.count_tokens(text) in (0, 1)
    assert completion.completion_tokens > 0


def test_a_prompt_does_not_change_when_its_messages_list_does(model: Model) -> None:
    messages = [dict(m) for m in MESSAGES]
    prompt = Prompt(messages)
    before = model.render(prompt)
    messages[-1]["content"] = "Something else entirely?"
    assert model.render(prompt) == before and hash(prompt) == hash(Prompt(MESSAGES))


def test_complete_on_a_stream_closed_early_says_so(model: Model) -> None:
    stream = model.stream(Prompt(MESSAGES), GREEDY)
    next(stream)
    stream.close()
    with pytest.raises(GenerationError, match="stopped before it ended"):
        stream.complete()
    assert model.complete(Prompt(MESSAGES), GREEDY).text  # the model is still usable
