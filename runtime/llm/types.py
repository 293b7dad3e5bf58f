"""The model-facing types in one place: what a model is asked (:class:`Prompt`), what one
generation gives back (:class:`Stream`, :class:`Completion`), and the plug points: :class:`Engine`
(what :class:`~runtime.llm.model.Model` runs on) and :class:`LanguageModel` (what answering needs,
a local :class:`~runtime.llm.model.Model` or a :class:`~runtime.llm.remote.RemoteModel`).

A prompt is data, not rendered text: only the local model renders its messages, with the GGUF's
own chat template; a remote model sends them as they are. This module imports nothing heavy, so
type hints may name it anywhere.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

from runtime.config import GenerateOptions
from runtime.errors import GenerationError

__all__ = ["ChatModel", "Completion", "Engine", "LanguageModel", "ModelInfo", "Prompt", "Stream"]


@dataclass(frozen=True, init=False)
class Prompt:
    """Chat ``messages`` (``{"role": ..., "content": ...}``) and the ``answer_prefix`` the reply
    is started with (rt's ``"According to ["``); ``add_generation_prompt`` false leaves the
    assistant's turn unopened.

    The messages are copied, so changing the caller's list later does not change the prompt.
    """

    messages: tuple[dict[str, str], ...]
    answer_prefix: str
    add_generation_prompt: bool

    def __init__(self, messages: Sequence[Mapping[str, str]], answer_prefix: str = "", *,
                 add_generation_prompt: bool = True) -> None:
        object.__setattr__(self, "messages", tuple(dict(m) for m in messages))
        object.__setattr__(self, "answer_prefix", answer_prefix)
        object.__setattr__(self, "add_generation_prompt", add_generation_prompt)

    def key(self) -> tuple[object, ...]:
        """A hashable identity of what the prompt says (messages are dicts, which do not hash)."""
        return (tuple(tuple(sorted(m.items())) for m in self.messages), self.answer_prefix,
                self.add_generation_prompt)

    def __hash__(self) -> int:
        return hash(self.key())


@dataclass(frozen=True)
class Completion:
    """The result of one generation.

    ``finish_reason`` is ``"stop"`` (end-of-generation token or a stop string), ``"length"``
    (``max_tokens`` reached or the context window full) or ``"loop"`` (the model fell into a loop
    and was stopped, :class:`~runtime.llm.generation.LoopGuard`; ``rt serve`` reports it to
    OpenAI clients as ``"stop"``). ``cached_tokens`` is how many prompt
    tokens were reused from the previous call's KV cache instead of being processed again.
    ``draft_tokens`` were guessed by prompt lookup and ``accepted_tokens`` of them kept.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    finish_reason: str
    prompt_seconds: float
    generation_seconds: float
    draft_tokens: int = 0  # prompt-lookup tokens drafted, and those the model agreed with
    accepted_tokens: int = 0
    threads: int = 0  # the threads that generated it (0: not known, a remote model)

    @property
    def tokens_per_second(self) -> float:
        """Generation speed (completion tokens over generation seconds)."""
        return self.completion_tokens / self.generation_seconds if self.generation_seconds > 0 else 0.0


class Stream(Iterator[str]):
    """Text pieces of one generation, as they are produced.

    :attr:`completion` is set (a :class:`Completion` with the whole text, token counts and
    timings) once iteration ends; :meth:`complete` runs to the end and returns it. :meth:`close`
    (or leaving a ``with`` block) stops the generation early.
    """

    def __init__(self, generator: Generator[str, None, Completion]) -> None:
        self._generator = generator
        self.completion: Completion | None = None
        self.closed = False

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        if self.closed:
            raise StopIteration
        try:
            return next(self._generator)
        except StopIteration as stop:
            self.completion = stop.value
            self.closed = True
            raise StopIteration from None

    def complete(self) -> Completion:
        """Generate to the end and return the whole :class:`Completion`."""
        for _ in self:
            pass
        if self.completion is None:  # closed before it ended: there is no whole text
            raise GenerationError("the generation was stopped before it ended",
                                  hint="read the stream to its end before asking for the completion")
        return self.completion

    def close(self) -> None:
        """Stop generating (the text produced so far stays in the model's KV cache)."""
        if not self.closed:
            self.closed = True
            self._generator.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@runtime_checkable
class Engine(Protocol):
    """A loaded model that tokenizes text and streams a generation: what
    :class:`~runtime.llm.model.Model` runs on. :class:`runtime.llm.llama_engine.LlamaEngine` runs
    llama.cpp in this process, :class:`runtime.llm.worker.WorkerEngine` proxies the same calls to a
    model child process; both also read a yes/no judgement from the logits
    (:class:`runtime.llm.yes_no.YesNoReader`), which another engine may lack.

    An engine sees rendered text (a :class:`~runtime.llm.chat_template.ChatPrompt` knows where the
    messages' own text lies). ``n_ctx`` is the context window in tokens and ``pid`` the id of the
    process holding the model. :meth:`stream` raises :class:`~runtime.errors.ContextOverflowError`
    before generating when the prompt does not fit; the generator's return value is the
    :class:`Completion`.
    """

    n_ctx: int
    pid: int

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]: ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def special_tokens(self) -> dict[str, str]: ...

    def stream(self, prompt: str, options: GenerateOptions = GenerateOptions()) -> Generator[str, None, Completion]: ...

    def close(self) -> None: ...


class ModelInfo(Protocol):
    """What answering reads of a model's metadata (a GGUF's, or a server's)."""

    @property
    def chat_template(self) -> str | None: ...


class ChatModel(Protocol):
    """What prompt building needs from a model: its context window, and a :class:`Prompt`'s
    tokens. :meth:`render` is the text the model sees for it (the local model's template; for a
    remote one, the role-tagged text it counts), for showing and for comparing two prompts."""

    n_ctx: int

    def render(self, prompt: Prompt) -> str: ...

    def count_tokens(self, prompt: Prompt | str) -> int: ...


class LanguageModel(ChatModel, Protocol):
    """What answering needs from a model: :class:`~runtime.llm.model.Model` (a local GGUF) and
    :class:`~runtime.llm.remote.RemoteModel` (an OpenAI-compatible server) both have it.

    :meth:`stream` takes a :class:`Prompt`, or plain text the model continues as it is.
    """

    path: Path

    @property
    def info(self) -> ModelInfo: ...

    def stream(self, prompt: Prompt | str, options: GenerateOptions = GenerateOptions()) -> Stream: ...

    def close(self) -> None: ...
