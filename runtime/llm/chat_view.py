"""How a model turns a :class:`~runtime.llm.types.Prompt` into prompt text: its own chat template,
or, for a base model whose GGUF has none, a plain ``Question:``/``Answer:`` layout
(:class:`PlainChat`).

``rt ask --no-rag``, the RAG prompt builder and ``rt chat`` all go through :func:`chat_view`, so a
base model is handled the same way everywhere: a warning, the plain layout, and stop strings that
end its answer before it writes the next ``Question:``.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from runtime.config import GenerateOptions
from runtime.llm.chat_template import plain_prompt
from runtime.llm.types import ChatModel, LanguageModel, Prompt, Stream

__all__ = ["ChatModel", "LanguageModel", "PlainChat", "chat_view", "with_chat_stops"]

logger = logging.getLogger(__name__)


class PlainChat:
    """A model without a chat template (a base model) seen through the plain layout of
    :func:`runtime.llm.chat_template.plain_prompt`; :attr:`stop` ends its answer."""

    def __init__(self, model: LanguageModel) -> None:
        self.model = model
        self.n_ctx = model.n_ctx
        self.stop: tuple[str, ...] = plain_prompt([])[1]

    def render(self, prompt: Prompt) -> str:
        """The messages as ``system``, ``Question: ...``, ``Answer: ...`` blocks, ending in
        ``Answer:``, then the prompt's answer prefix."""
        return plain_prompt(prompt.messages)[0] + prompt.answer_prefix

    def count_tokens(self, prompt: Prompt | str) -> int:
        return self.model.count_tokens(self._text(prompt))

    def stream(self, prompt: Prompt | str, options: GenerateOptions = GenerateOptions()) -> Stream:
        """The model's stream of ``prompt`` in the plain layout (add :func:`with_chat_stops`)."""
        return self.model.stream(self._text(prompt), options)

    def _text(self, prompt: Prompt | str) -> str:
        return self.render(prompt) if isinstance(prompt, Prompt) else prompt


def chat_view(model: LanguageModel) -> LanguageModel | PlainChat:
    """``model`` itself, or a :class:`PlainChat` view of it (with a warning) when its GGUF has no
    chat template."""
    if model.info.chat_template:
        return model
    logger.warning("%s has no chat template (a base model?); using a plain Question/Answer prompt",
                   model.path.name)
    return PlainChat(model)


def with_chat_stops(view: ChatModel, options: GenerateOptions) -> GenerateOptions:
    """``options`` plus the stop strings that end an answer in ``view``'s layout (none for a
    model's own chat template: its end-of-turn token stops it)."""
    if isinstance(view, PlainChat):
        return replace(options, stop=tuple(options.stop) + view.stop)
    return options
