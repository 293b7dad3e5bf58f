"""How results become OpenAI objects: a chat completion or a text completion, whole or as
stream chunks, with rt's ``usage``, ``sources``, ``claims`` and ``coverage`` beside ``choices``."""

from __future__ import annotations

import time
import uuid
from typing import Any

from runtime.serve.jobs import Result


class Shape:
    """How results become OpenAI objects (chat completion or text completion)."""

    object_name = ""
    chunk_name = ""

    def __init__(self, model_id: str, include_usage: bool) -> None:
        self.model_id = model_id
        self.include_usage = include_usage
        self.id = f"{self.prefix}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())

    prefix = "cmpl"

    def _frame(self, object_name: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": object_name, "created": self.created, "model": self.model_id,
                "choices": choices}

    def whole(self, result: Result) -> dict[str, Any]:
        data = self._frame(self.object_name, [self.choice(result)])
        return data | _extras(result)

    def first(self) -> dict[str, Any]:
        return self._frame(self.chunk_name, [self.delta({"role": "assistant", "content": ""}, None)])

    def piece(self, text: str) -> dict[str, Any]:
        return self._frame(self.chunk_name, [self.delta({"content": text}, None)])

    def last(self, result: Result) -> list[dict[str, Any]]:
        final = self._frame(self.chunk_name, [self.delta({}, _finish(result))]) | _extras(result)
        chunks = [final]
        if self.include_usage:
            chunks.append(self._frame(self.chunk_name, []) | {"usage": _usage(result)})
        return chunks

    def choice(self, result: Result) -> dict[str, Any]:
        raise NotImplementedError

    def delta(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        raise NotImplementedError


class ChatShape(Shape):
    object_name, chunk_name, prefix = "chat.completion", "chat.completion.chunk", "chatcmpl"

    def choice(self, result: Result) -> dict[str, Any]:
        return {"index": 0, "message": {"role": "assistant", "content": result.text}, "logprobs": None,
                "finish_reason": _finish(result)}

    def delta(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}


class TextShape(Shape):
    object_name, chunk_name, prefix = "text_completion", "text_completion", "cmpl"

    def choice(self, result: Result) -> dict[str, Any]:
        return {"index": 0, "text": result.text, "logprobs": None, "finish_reason": _finish(result)}

    def delta(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {"index": 0, "text": delta.get("content", ""), "logprobs": None, "finish_reason": finish}


def _finish(result: Result) -> str:
    return "length" if result.finish_reason == "length" else "stop"


def _usage(result: Result) -> dict[str, Any]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": result.cached_tokens}}


COVERAGE_KEYS = ("covered", "from_documents", "best_similarity", "threshold", "citations", "supported",
                 "dropped", "dropped_turns", "notices")


def _extras(result: Result) -> dict[str, Any]:
    """``usage`` always; with RAG, ``sources``, ``claims`` (each sentence's evidence) and
    ``coverage``: the verdict fields of ``rt ask --json`` with its coverage ``reason`` and
    ``signals``, in one object whose keys never change."""
    extras: dict[str, Any] = {"usage": _usage(result)}
    if result.answer is not None:
        data = result.answer.to_dict()
        found = data.get("coverage")
        detail: dict[str, Any] = found if isinstance(found, dict) else {}
        extras["sources"] = data["sources"]
        extras["claims"] = data.get("claims", [])
        extras["coverage"] = {key: data.get(key) for key in COVERAGE_KEYS} | {
            "reason": detail.get("reason"), "signals": detail.get("signals", {})}
    return extras
