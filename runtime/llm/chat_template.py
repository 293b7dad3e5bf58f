"""Chat templates: the GGUF's own Jinja2 template (``tokenizer.chat_template``) rendered the way
Hugging Face's ``apply_chat_template`` does, in a sandbox.

Templates expect ``messages``, ``add_generation_prompt``, ``bos_token`` and ``eos_token``, and
may call ``raise_exception(message)`` (e.g. Gemma's, when roles do not alternate).

The rendered text is a :class:`ChatPrompt`: it knows where the messages' own text lies, so the
engine tokenizes only the template's parts with special tokens parsed. ``<|im_start|>system``
written in a document or a question stays text and cannot forge a turn.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any, SupportsIndex

from runtime.errors import InputError, UnsupportedModelError

logger = logging.getLogger(__name__)

# SmolLM2-135M answers "What is the capital of France?" with French word salad under its own
# default system prompt, and with "The capital of France is Paris." under this one.
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


def question_messages(question: str, system: str | None = DEFAULT_SYSTEM_PROMPT) -> list[dict[str, str]]:
    """The messages for a single question, with an optional system prompt."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    return messages


Span = tuple[int, int]


class ChatPrompt(str):
    """Prompt text rendered from chat messages; :attr:`plain` holds the ``(start, end)`` spans
    of the messages' own text, which is tokenized as plain text (no special tokens), while the
    rest (the template's) has its special tokens parsed.

    It is a ``str`` everywhere else. Adding text keeps the spans (added ``str`` counts as
    template text, as a ready prompt would); a slice keeps the spans inside it; any other
    string operation gives a plain ``str``, which is tokenized as before.
    """

    plain: tuple[Span, ...]

    def __new__(cls, text: str, plain: Sequence[Span] = ()) -> ChatPrompt:
        self = super().__new__(cls, text)
        self.plain = tuple((start, end) for start, end in plain if end > start)
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # to the model process and back
        return ChatPrompt, (str(self), self.plain)

    def __add__(self, other: str) -> ChatPrompt:
        if not isinstance(other, str):
            return NotImplemented
        spans = _shifted(other, len(self))
        return ChatPrompt(str(self) + str(other), self.plain + spans)

    def __radd__(self, other: str) -> ChatPrompt:
        if not isinstance(other, str):
            return NotImplemented
        return ChatPrompt(str(other) + str(self), _shifted(other, 0) + _shifted(self, len(other)))

    def __getitem__(self, key: SupportsIndex | slice) -> str:
        if not isinstance(key, slice) or key.step not in (None, 1):
            return str(self)[key]
        start, stop, _ = key.indices(len(self))
        stop = max(start, stop)
        spans = [(max(a, start) - start, min(b, stop) - start) for a, b in self.plain if a < stop and b > start]
        return ChatPrompt(str(self)[start:stop], spans)

    def segments(self) -> Iterator[tuple[str, bool]]:
        """The text in order as ``(piece, is_message_text)``, empty pieces left out."""
        text, at = str(self), 0
        for start, end in self.plain:
            if start > at:
                yield text[at:start], False
            yield text[start:end], True
            at = end
        if at < len(text):
            yield text[at:], False


def _shifted(text: str, offset: int) -> tuple[Span, ...]:
    spans = text.plain if isinstance(text, ChatPrompt) else ()
    return tuple((start + offset, end + offset) for start, end in spans)


def plain_prompt(messages: Sequence[Mapping[str, str]]) -> tuple[ChatPrompt, tuple[str, ...]]:
    """A template-free prompt for base models (no chat template), and the stop strings that end
    its answer: the system text, then ``Question: ...`` / ``Answer: ...`` turns."""
    parts: list[tuple[str, str]] = [("", m["content"]) for m in messages if m["role"] == "system"]
    for m in messages:
        if m["role"] == "user":
            parts.append(("Question: ", m["content"]))
        elif m["role"] == "assistant":
            parts.append(("Answer: ", m["content"]))
    prompt = ChatPrompt("")
    for n, (label, content) in enumerate(parts):
        prompt = prompt + ("\n\n" if n else "") + label + ChatPrompt(content, [(0, len(content))])
    return prompt + "\nAnswer:", ("\nQuestion:", "\n\n\n")


def _raise_exception(message: str) -> None:
    raise InputError(f"the model's chat template refused the messages: {message}")


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    from jinja2 import TemplateError

    from runtime.llm.template_sandbox import BoundedSandbox

    # the same settings as Hugging Face's apply_chat_template, which these templates are written for
    environment = BoundedSandbox(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    environment.add_filter("tojson", lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent))
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = lambda fmt: _dt.datetime.now().strftime(fmt)
    try:
        return environment.from_string(template)
    except TemplateError as exc:
        raise UnsupportedModelError(f"the model's chat template does not parse: {exc}") from exc


def render_chat(
    template: str | None,
    messages: Sequence[Mapping[str, str]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    model_name: str = "this model",
) -> ChatPrompt:
    """Render ``messages`` with a GGUF chat template into prompt text, which knows where the
    messages' own text lies (:class:`ChatPrompt`).

    Raises :class:`UnsupportedModelError` when the model has no template (or one that does not
    parse, fails, or goes past the bounds of :mod:`runtime.llm.template_sandbox`: CPU time,
    output size, huge numbers or strings), :class:`InputError` when the template rejects the
    messages.
    """
    if not template:
        raise UnsupportedModelError(
            f"{model_name} has no chat template (tokenizer.chat_template is missing)",
            hint="use an instruction-tuned model, or pass a ready prompt to Model.complete()",
        )
    from jinja2 import TemplateError

    from runtime.llm import template_sandbox
    from runtime.llm.template_sandbox import TemplateLimitError, render_bounded

    context = {"messages": [dict(m) for m in messages], "add_generation_prompt": add_generation_prompt,
               "bos_token": bos_token, "eos_token": eos_token}
    deadline = time.monotonic() + template_sandbox.MAX_SECONDS  # for both renderings together
    try:
        text = render_bounded(_compile(template), context, deadline=deadline)
        return ChatPrompt(text, _message_spans(_compile(template), context, text, deadline))
    except TemplateLimitError as exc:
        raise UnsupportedModelError(f"the chat template of {model_name} was stopped: {exc}",
                                    hint="use a GGUF from a source you trust") from None
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        if isinstance(exc, InputError):  # raise_exception() in the template
            raise
        raise UnsupportedModelError(f"the chat template of {model_name} failed: "
                                    f"{type(exc).__name__}: {exc}") from exc
    except (RecursionError, MemoryError) as exc:
        raise UnsupportedModelError(f"the chat template of {model_name} failed: {type(exc).__name__} "
                                    "(it recurses without end or needs too much memory)") from None


def _message_spans(compiled: Any, context: dict[str, Any], text: str, deadline: float) -> list[Span]:
    """Where each message's text lies in ``text``, its rendering with ``context``.

    The template is rendered again with each message's text replaced by a random marker; the
    text put back in place of the markers (or trimmed, as Gemma's ``| trim`` does) must give
    ``text`` again, so each span is exactly where the template put a message. A template whose
    output depends on the text itself (``content.split(...)``) fails that check; the messages
    are then looked for in order in ``text``.
    """
    from runtime.llm.template_sandbox import render_bounded

    nonce = secrets.token_hex(8)
    contents: list[str] = []
    marked = []
    for message in context["messages"]:
        content = message.get("content")
        if isinstance(content, str) and content:
            message = dict(message, content=f"\ue000{nonce}:{len(contents)}\ue001")
            contents.append(content)
        marked.append(message)
    if not contents:
        return []
    skeleton = render_bounded(compiled, dict(context, messages=marked), deadline=deadline)
    spans = _fill(re.split(f"\ue000{nonce}:(\\d+)\ue001", skeleton), contents, text)
    if spans is None:
        logger.debug("the chat template's output depends on the messages' text; finding them in it")
        spans = _find_in_order(contents, text)
    return spans


def _fill(pieces: list[str], contents: list[str], text: str) -> list[Span] | None:
    """The spans of ``contents`` when ``pieces`` (template text, marker number, template text,
    ...) with each marker replaced by its content, whole or trimmed, give ``text``; else None."""
    spans, at = [], 0
    for n, piece in enumerate(pieces):
        if n % 2 == 0:
            if not text.startswith(piece, at):
                return None
            at += len(piece)
            continue
        content = contents[int(piece)]
        for form in (content, content.strip()):
            if text.startswith(form, at):
                spans.append((at, at + len(form)))
                at += len(form)
                break
        else:
            return None
    return spans if at == len(text) else None


def _find_in_order(contents: list[str], text: str) -> list[Span]:
    spans, at = [], 0
    for content in contents:
        for form in (content, content.strip()):
            found = text.find(form, at) if form else -1
            if found >= 0:
                spans.append((found, found + len(form)))
                at = found + len(form)
                break
    return spans
