"""What runs in the model thread for each endpoint: plain chat, raw completion, chat over an index.

A job streams its text through ``emit`` and checks ``cancel`` between two pieces; when the
client has gone it stops the model's generation and returns ``None``. Otherwise it returns a
:class:`Result` that the endpoint turns into the response's ``usage`` (and, for RAG, its
``sources`` and ``coverage``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from runtime.config import GenerateOptions
from runtime.errors import InputError
from runtime.llm.types import Prompt

if TYPE_CHECKING:
    from runtime.rag.answer import Answer
    from runtime.serve.host import ModelHost

Emit = Callable[[str], None]


@dataclass(frozen=True)
class Result:
    """One finished generation."""

    text: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    answer: Answer | None = None
    threads: int = 0  # generation threads (0: not known)


def _drain(pieces: Iterator[str], emit: Emit, cancel: threading.Event) -> bool:
    """Emit pieces until the end (True) or until ``cancel`` is set (False)."""
    for piece in pieces:
        if cancel.is_set():
            return False
        if piece:
            emit(piece)
    return not cancel.is_set()


def _from_completion(completion: Any) -> Result:
    return Result(text=completion.text, finish_reason=completion.finish_reason,
                  prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                  cached_tokens=completion.cached_tokens, threads=completion.threads)


def generate(prompt: str | None, messages: Sequence[dict[str, str]] | None, options: GenerateOptions):
    """A job generating from a raw ``prompt``, or from chat ``messages`` (which the model renders
    with its own template, or a remote model sends on)."""

    asked = Prompt(messages) if messages is not None else prompt
    assert asked is not None

    def job(host: ModelHost, emit: Emit, cancel: threading.Event) -> Result | None:
        stream = host.model.stream(asked, host.request_options(options))
        try:
            if not _drain(stream, emit, cancel):
                return None
        finally:
            stream.close()  # a stopped stream tells the model process to stop generating
        return _from_completion(stream.completion)

    return job


def split_chat(messages: Sequence[dict[str, str]]) -> tuple[str, list[Any]]:
    """The question (the last user message) and the earlier user/assistant turns."""
    from runtime.rag.prompt import Turn

    if messages[-1]["role"] != "user":
        raise InputError("with \"rag\", the last message must be the user's question")
    turns, pending = [], None
    for message in messages[:-1]:
        if message["role"] == "user":
            pending = message["content"]
        elif message["role"] == "assistant" and pending is not None:
            turns.append(Turn(pending, message["content"]))
            pending = None
    return messages[-1]["content"], turns


def ask(messages: Sequence[dict[str, str]], options: GenerateOptions, *, index: str | None, k: int | None,
        answer_anyway: bool):
    """A job answering the last user message from an index, with the earlier turns as history."""
    question, history = split_chat(messages)
    if not question.strip():
        raise InputError("the question is empty")

    def job(host: ModelHost, emit: Emit, cancel: threading.Event) -> Result | None:
        rag = host.rag(index)
        stream = rag.stream(question, k=k, options=host.request_options(options), answer_anyway=answer_anyway,
                            history=history)
        if not _drain(stream, emit, cancel):
            host.stop_generation()
            return None
        answer = stream.answer
        assert answer is not None
        usage = answer.usage
        return Result(text=answer.answer, finish_reason=answer.finish_reason, prompt_tokens=usage.prompt_tokens,
                      completion_tokens=usage.completion_tokens, cached_tokens=usage.cached_tokens,
                      answer=answer)

    return job
