"""Answers from the model alone (``rt ask --no-rag``), in the same :class:`Answer` record as RAG.

Nothing is retrieved: ``sources`` and ``citations`` are empty, ``from_documents`` is false, and
``covered``, ``best_similarity`` and ``threshold`` are ``None``; the token counts and timings
are filled in as for a retrieval-augmented answer, so ``rt ask --json`` has one shape with and
without ``--no-rag``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from runtime.config import GenerateOptions
from runtime.llm.chat_template import DEFAULT_SYSTEM_PROMPT, question_messages
from runtime.llm.chat_view import chat_view, with_chat_stops
from runtime.llm.types import Prompt
from runtime.rag.answer import Answer, Timings, Usage
from runtime.rag.rag import AnswerStream

if TYPE_CHECKING:
    from runtime.llm.types import LanguageModel


def ask_model(model: LanguageModel, question: str, *, system: str | None = DEFAULT_SYSTEM_PROMPT,
              options: GenerateOptions = GenerateOptions()) -> AnswerStream:
    """Stream the model's own answer to ``question`` (with ``system`` as its system prompt).

    A base model without a chat template gets a plain ``Question:``/``Answer:`` prompt
    (:func:`runtime.llm.chat_view.chat_view`). Raises :class:`ContextOverflowError` here, before
    anything is generated, when the question does not fit the context window.
    """
    started = time.perf_counter()
    view = chat_view(model)
    prompt = Prompt(question_messages(question, system))
    options = with_chat_stops(view, options)
    building = time.perf_counter() - started
    stream = view.stream(prompt, options)

    def finish() -> Answer:
        completion = stream.completion
        assert completion is not None
        timings = Timings(prompt_building=building, prompt_processing=completion.prompt_seconds,
                          generation=completion.generation_seconds, total=time.perf_counter() - started)
        return Answer(
            question=question,
            answer=completion.text.strip(),
            covered=None,
            from_documents=False,
            sources=[],
            citations=[],
            dropped=0,
            dropped_turns=0,
            best_similarity=None,
            threshold=None,
            usage=Usage(completion.prompt_tokens, completion.completion_tokens, completion.cached_tokens,
                        completion.draft_tokens, completion.accepted_tokens),
            timings=timings,
            finish_reason=completion.finish_reason,
        )

    return AnswerStream(stream, finish)
