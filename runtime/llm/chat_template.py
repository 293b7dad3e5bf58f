"""Chat templates: the GGUF's own Jinja2 template (``tokenizer.chat_template``) rendered the way
Hugging Face's ``apply_chat_template`` does, in a sandbox.

Templates expect ``messages``, ``add_generation_prompt``, ``bos_token`` and ``eos_token``, and
may call ``raise_exception(message)`` (e.g. Gemma's, when roles do not alternate).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from runtime.errors import InputError, UnsupportedModelError

# SmolLM2-135M answers "What is the capital of France?" with French word salad under its own
# default system prompt, and with "The capital of France is Paris." under this one.
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


def question_messages(question: str, system: str | None = DEFAULT_SYSTEM_PROMPT) -> list[dict[str, str]]:
    """The messages for a single question, with an optional system prompt."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    return messages


def plain_prompt(messages: Sequence[Mapping[str, str]]) -> tuple[str, tuple[str, ...]]:
    """A template-free prompt for base models (no chat template), and the stop strings that end
    its answer: the system text, then ``Question: ...`` / ``Answer: ...`` turns."""
    parts = [m["content"] for m in messages if m["role"] == "system"]
    for m in messages:
        if m["role"] == "user":
            parts.append(f"Question: {m['content']}")
        elif m["role"] == "assistant":
            parts.append(f"Answer: {m['content']}")
    return "\n\n".join(parts) + "\nAnswer:", ("\nQuestion:", "\n\n\n")


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
) -> str:
    """Render ``messages`` with a GGUF chat template into prompt text.

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

    from runtime.llm.template_sandbox import TemplateLimitError, render_bounded

    context = {"messages": [dict(m) for m in messages], "add_generation_prompt": add_generation_prompt,
               "bos_token": bos_token, "eos_token": eos_token}
    try:
        return render_bounded(_compile(template), context)
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
