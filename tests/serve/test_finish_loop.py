"""A generation stopped for a loop (``finish_reason`` ``"loop"`` in rt) reaches OpenAI clients
as ``"stop"``, one of the values their types accept, whole and streamed."""

from __future__ import annotations

import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from runtime.serve.jobs import Result
from runtime.serve.shapes import ChatShape, TextShape

LOOPED = Result(text="The preflight is a preflight. The preflight is a preflight.", finish_reason="loop",
                prompt_tokens=20, completion_tokens=14)


def test_the_openai_types_refuse_rts_own_word_for_a_loop() -> None:
    data = ChatShape("smollm2", include_usage=False).whole(LOOPED)
    data["choices"][0]["finish_reason"] = "loop"
    with pytest.raises(ValueError):
        ChatCompletion.model_validate(data)


def test_a_looped_chat_completion_finishes_with_stop() -> None:
    shape = ChatShape("smollm2", include_usage=True)
    whole = ChatCompletion.model_validate(shape.whole(LOOPED))
    assert whole.choices[0].finish_reason == "stop"
    chunks = [ChatCompletionChunk.model_validate(c) for c in shape.last(LOOPED)]
    assert chunks[0].choices[0].finish_reason == "stop"


def test_a_looped_text_completion_finishes_with_stop() -> None:
    whole = Completion.model_validate(TextShape("smollm2", include_usage=False).whole(LOOPED))
    assert whole.choices[0].finish_reason == "stop"
