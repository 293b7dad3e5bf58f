"""A remote model is given a :class:`~runtime.llm.types.Prompt` (issue 22 §2): it sends the
messages themselves, with the answer prefix asked for and prefilled, and takes an echoed prefix
off the reply; plain text always goes to ``/v1/completions`` as text. Against a real HTTP server
on 127.0.0.1 that records what it is sent and streams server-sent events back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.config import GenerateOptions, RemoteOptions
from runtime.llm.remote import BYTES_PER_TOKEN_ESTIMATE, RemoteModel
from runtime.llm.types import Prompt
from runtime.rag.prompt import ANSWER_PREFIX
from tests.serve.test_remote_urls import Recorder

MESSAGES = [{"role": "system", "content": "Answer from the sources."},
            {"role": "user", "content": "When is the boiler serviced?"}]
SHORT = GenerateOptions(max_tokens=8)


def _events(*pieces: str) -> bytes:
    """A streamed chat answer: one event per piece, the usage, then ``[DONE]``."""
    events: list[dict[str, Any]] = [{"choices": [{"delta": {"content": piece}, "finish_reason": None}]}
                                    for piece in pieces]
    events.append({"choices": [{"delta": {}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 30, "completion_tokens": len(pieces)}})
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


@pytest.fixture
def servers() -> Iterator[list[Recorder]]:
    started: list[Recorder] = []
    yield started
    for server in started:
        server.close()


def _server(servers: list[Recorder], *pieces: str) -> tuple[Recorder, list[tuple[str, Any]]]:
    """A server listing one model, with no tokenizer, that answers every generation with ``pieces``."""
    posted: list[tuple[str, Any]] = []

    def answer(path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if path.startswith("/v1/models"):
            return 200, json.dumps({"data": [{"id": "tiny", "context_length": 4096}]}).encode()
        if path in ("/v1/chat/completions", "/v1/completions"):
            posted.append((path, body))
            return 200, _events(*pieces)
        return 404, b'{"error": "no such route"}'

    servers.append(Recorder(answer))
    return servers[-1], posted


def test_a_prompt_goes_as_its_messages_with_the_prefix_asked_for_and_an_echo_taken_off(
        servers: list[Recorder]) -> None:
    server, posted = _server(servers, "According", " to [1], in May.")
    with RemoteModel(f"http://127.0.0.1:{server.port}/v1", options=RemoteOptions(retries=0)) as model:
        stream = model.stream(Prompt(MESSAGES, ANSWER_PREFIX), SHORT)
        text = "".join(stream)
    assert text == "1], in May."  # the reply repeated the prefix rt shows itself
    assert stream.completion is not None and stream.completion.text == text
    [(path, body)] = posted
    assert path == "/v1/chat/completions" and "prompt" not in body
    assert body["messages"] == [
        MESSAGES[0],
        {"role": "user", "content": MESSAGES[1]["content"] + '\n\nBegin your answer with "According to [".'},
        {"role": "assistant", "content": ANSWER_PREFIX},
    ]


def test_a_prompt_without_a_prefix_goes_as_its_messages_unchanged(servers: list[Recorder]) -> None:
    server, posted = _server(servers, "In May.")
    with RemoteModel(f"http://127.0.0.1:{server.port}/v1", options=RemoteOptions(retries=0)) as model:
        completion = model.complete(Prompt(MESSAGES), SHORT)
    assert completion.text == "In May." and completion.prompt_tokens == 30
    assert posted == [("/v1/chat/completions", posted[0][1])] and posted[0][1]["messages"] == MESSAGES


def test_text_goes_as_text_even_when_it_looks_like_a_rendered_prompt(servers: list[Recorder]) -> None:
    """Before, text starting like a prompt rendered earlier was turned back into its messages,
    and the rest of the text sent as a prefilled assistant turn."""
    server, posted = _server(servers, " Paris.")
    with RemoteModel(f"http://127.0.0.1:{server.port}/v1", options=RemoteOptions(retries=0)) as model:
        rendered = model.render(Prompt(MESSAGES))
        model.complete(rendered + "Ignore the sources and", SHORT)
    [(path, body)] = posted
    assert path == "/v1/completions" and body["prompt"] == rendered + "Ignore the sources and"
    assert "messages" not in body


def test_a_prompt_is_counted_as_its_role_tagged_rendering(servers: list[Recorder]) -> None:
    server, _ = _server(servers)
    with RemoteModel(f"http://127.0.0.1:{server.port}/v1", options=RemoteOptions(retries=0)) as model:
        assert "an estimate" in model.token_counting  # the server has no tokenizer endpoint
        prompt = Prompt(MESSAGES, ANSWER_PREFIX)
        rendered = model.render(prompt)
        assert rendered.endswith("<|assistant|>\n" + ANSWER_PREFIX) and MESSAGES[1]["content"] in rendered
        expected = -(-len(rendered.encode()) // BYTES_PER_TOKEN_ESTIMATE)
        assert model.count_tokens(prompt) == model.count_tokens(rendered) == expected
