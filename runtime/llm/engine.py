"""What :class:`~runtime.llm.model.Model` needs from an engine: the :class:`Engine` protocol.

Two engines satisfy it: :class:`runtime.llm.llama_engine.LlamaEngine` runs llama.cpp in this
process, :class:`runtime.llm.worker.WorkerEngine` proxies the same calls to a model child
process. Anything else that tokenizes and streams text (a remote server) can stand in for them.
Both also read a yes/no judgement from the logits (:class:`runtime.llm.yes_no.YesNoReader`),
which another engine may lack.
This module imports nothing heavy, so type hints may name it anywhere.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Protocol, runtime_checkable

from runtime.config import GenerateOptions
from runtime.llm.generation import Completion


@runtime_checkable
class Engine(Protocol):
    """A loaded model that tokenizes text and streams a generation.

    ``n_ctx`` is the context window in tokens and ``pid`` the id of the process holding the
    model. :meth:`stream` raises :class:`~runtime.errors.ContextOverflowError` before generating
    when the prompt does not fit; the generator's return value is the :class:`Completion`.
    """

    n_ctx: int
    pid: int

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]: ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def special_tokens(self) -> dict[str, str]: ...

    def stream(self, prompt: str, options: GenerateOptions = GenerateOptions()) -> Generator[str, None, Completion]: ...

    def close(self) -> None: ...
