"""Request bodies of the OpenAI-compatible endpoints, validated with pydantic.

Unknown fields are ignored (clients send ``presence_penalty``, ``user``, ...), but every field
rt reads is checked for type and range, and a bad one is answered 400 with one line naming it:
``max_tokens: Input should be greater than or equal to 1``. rt's own extension is the ``rag``
field of a chat request (``{"k": 5, "index": "notes", "answer_anyway": false}``).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runtime.config import GenerateOptions

_DEFAULTS = GenerateOptions()
MAX_STOP = 8


class BadRequest(Exception):
    """A request rt cannot serve as sent: answered ``status`` with an OpenAI-shaped error body."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 code: str = "invalid_request", error_type: str = "invalid_request_error",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.error_type = error_type
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param,
                          "code": self.code}}


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=False)


class Sampling(_Request):
    """The sampling fields chat and completions share; absent ones take rt's defaults."""

    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    n: int = Field(default=1, ge=1, le=1)
    stream_options: dict[str, Any] | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else (value or [])
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop strings, got {len(stops)}")
        if any(not s for s in stops):
            raise ValueError("stop strings must not be empty")
        return value

    def generate_options(self, n_ctx: int) -> GenerateOptions:
        """The request's :class:`GenerateOptions` (``max_tokens`` is capped by ``n_ctx`` here)."""
        max_tokens = self.max_completion_tokens or self.max_tokens or _DEFAULTS.max_tokens
        if max_tokens >= n_ctx:
            raise BadRequest(f"max_tokens is {max_tokens} but the context window holds {n_ctx} tokens",
                             param="max_tokens")
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return GenerateOptions(
            max_tokens=max_tokens,
            temperature=_DEFAULTS.temperature if self.temperature is None else self.temperature,
            top_p=_DEFAULTS.top_p if self.top_p is None else self.top_p,
            seed=_DEFAULTS.seed if self.seed is None else self.seed,
            stop=tuple(stop),
        )

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class TextPart(_Request):
    type: Literal["text"]
    text: str


class Message(_Request):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[TextPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class RagRequest(_Request):
    """rt's extension: answer from an index, with sources (``k`` passages, ``index`` folder)."""

    k: int | None = Field(default=None, ge=1, le=50)
    index: str | None = Field(default=None, min_length=1)
    answer_anyway: bool = False


class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1)
    rag: RagRequest | None = None

    def chat_messages(self) -> list[dict[str, str]]:
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                for m in self.messages]


class CompletionRequest(Sampling):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        prompts = [value] if isinstance(value, str) else value
        if len(prompts) != 1:
            raise ValueError(f"exactly one prompt is served per request, got {len(prompts)}")
        if not prompts[0]:
            raise ValueError("the prompt is empty")
        return value

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class EmbeddingRequest(_Request):
    model: str | None = None
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


R = TypeVar("R", bound=BaseModel)


def parse_body(raw: bytes, schema: type[R], *, limit: int) -> R:
    """``raw`` as a ``schema`` object, or :class:`BadRequest` with one line saying what is wrong."""
    if len(raw) > limit:
        raise BadRequest(f"the request body is {len(raw)} bytes; this server accepts at most {limit}",
                         code="body_too_large")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BadRequest("the request body nests arrays or objects too deeply to be read") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the request body is not JSON ({exc}); send a JSON object with "
                         "Content-Type: application/json") from None
    except ValueError:  # Python (3.10.7 on) refuses integers of over 4300 digits, sys.int_info's limit
        digits = getattr(sys.int_info, "default_max_str_digits", 4300)
        raise BadRequest(f"the request body holds a number of over {digits} digits, more than any field takes") \
            from None
    if not isinstance(data, dict):
        raise BadRequest(f"the request body must be a JSON object, not {type(data).__name__}")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(_one_line(exc), param=_first_param(exc)) from None


def _first_param(exc: ValidationError) -> str | None:
    errors = exc.errors()
    return ".".join(str(p) for p in errors[0]["loc"]) if errors else None


def _one_line(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


class TokenizeRequest(_Request):
    """llama-server's ``POST /tokenize`` body."""

    content: str
    add_special: bool = False
