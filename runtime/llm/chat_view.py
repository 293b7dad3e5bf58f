"""How a model turns chat messages into prompt text: its own chat template, or, for a base model
whose GGUF has none, a plain ``Question:``/``Answer:`` layout (:class:`PlainChat`).

``rt ask --no-rag``, the RAG prompt builder and ``rt chat`` all go through :func:`chat_view`, so a
base model is handled the same way everywhere: a warning, the plain layout, and stop strings that
end its answer before it writes the next ``Question:``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from runtime.config import GenerateOptions
from runtime.llm.chat_template import plain_prompt

if TYPE_CHECKING:
    from runtime.llm.model import Stream

logger = logging.getLogger(__name__)


class ChatModel(Protocol):
    """What prompt building needs from a model (:class:`~runtime.llm.model.Model` and
    :class:`PlainChat` have all three)."""

    n_ctx: int

    def chat_prompt(
        self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True
    ) -> str: ...

    def count_tokens(self, text: str) -> int: ...


class ModelInfo(Protocol):
    """What answering reads of a model's metadata (a GGUF's, or a server's)."""

    @property
    def chat_template(self) -> str | None: ...


class LanguageModel(ChatModel, Protocol):
    """What answering needs from a model: :class:`~runtime.llm.model.Model` (a local GGUF) and
    :class:`~runtime.llm.remote.RemoteModel` (an OpenAI-compatible server) both have it."""

    path: Path

    @property
    def info(self) -> ModelInfo: ...

    def stream(self, prompt: str, options: GenerateOptions = GenerateOptions()) -> Stream: ...

    def close(self) -> None: ...


class PlainChat:
    """A model without a chat template (a base model) seen through the plain layout of
    :func:`runtime.llm.chat_template.plain_prompt`; :attr:`stop` ends its answer."""

    def __init__(self, model: LanguageModel) -> None:
        self.model = model
        self.n_ctx = model.n_ctx
        self.stop: tuple[str, ...] = plain_prompt([])[1]

    def chat_prompt(self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True) -> str:
        """The messages as ``system``, ``Question: ...``, ``Answer: ...`` blocks, ending in ``Answer:``."""
        return plain_prompt(messages)[0]

    def count_tokens(self, text: str) -> int:
        return self.model.count_tokens(text)


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
