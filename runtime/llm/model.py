"""rt's Python API: load a GGUF once, then stream or complete many prompts.

    from runtime.llm.model import Model
    from runtime.config import GenerateOptions

    with Model() as model:                      # the embedded SmolLM2, or a name/path
        prompt = model.chat_prompt([{"role": "user", "content": "What is the capital of France?"}])
        for piece in model.stream(prompt):
            print(piece, end="", flush=True)
        print(model.complete(prompt, GenerateOptions(max_tokens=32)).text)

Loading checks the file (:func:`runtime.models.gguf_file.inspect_gguf`) and the memory it needs
(:func:`runtime.models.memory.preflight`) before llama.cpp sees it, then runs the model in a child
process (``LoadOptions.isolate``, the default) so that a native crash or an out-of-memory kill
ends in a :class:`ModelCrashedError` with a diagnosis instead of a silent exit.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from runtime.llm.chat_template import render_chat
from runtime.config import GenerateOptions, LoadOptions
from runtime.errors import ConfigError
from runtime.llm.generation import Completion
from runtime.models.registry import resolve_model
from runtime.llm.yes_no import YesNo, YesNoReader

if TYPE_CHECKING:
    from runtime.llm.engine import Engine

__all__ = ["Completion", "Model", "Stream"]

logger = logging.getLogger(__name__)


class Stream(Iterator[str]):
    """Text pieces of one generation, as they are produced.

    :attr:`completion` is set (a :class:`Completion` with the whole text, token counts and
    timings) once iteration ends. :meth:`close` (or leaving a ``with`` block) stops the
    generation early.
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


class Model:
    """A GGUF model loaded with llama.cpp, ready to generate.

    ``model`` is a registry name, a GGUF path, or ``None`` for the configured default
    (``RT_MODEL``, the registry default, else the embedded SmolLM2). Raises
    :class:`ModelNotFoundError`, :class:`ModelFileError` (and subclasses),
    :class:`UnsupportedModelError` or :class:`InsufficientMemoryError` before loading, and
    :class:`ModelLoadError` / :class:`ModelCrashedError` if llama.cpp fails.
    """

    def __init__(self, model: str | Path | None = None, options: LoadOptions = LoadOptions()) -> None:
        from runtime.llm.repack_choice import choose as choose_repack
        from runtime.models.gguf_file import inspect_gguf
        from runtime.models.memory import preflight

        self.path: Path = resolve_model(model)
        self.info = inspect_gguf(self.path)
        options = self._fit_context(options)
        if options.repack:  # forced: refused with the numbers before a probe is started
            preflight(self.info, options)
        options, self.repack = choose_repack(self.info, options)  # auto decided, and probed
        self.memory = preflight(self.info, options)
        self.options: LoadOptions = options
        self._active: Stream | None = None
        engine = self._start_engine()
        self._engine: Engine | None = engine
        self.n_ctx: int = engine.n_ctx

    @property
    def pid(self) -> int:
        """Id of the process that holds the model (the child with ``isolate``, else this one)."""
        if self._engine is None:
            raise ConfigError("this Model is closed", hint="create a new Model")
        return self._engine.pid  # reading it must not stop a stream

    def _fit_context(self, options: LoadOptions) -> LoadOptions:
        from runtime.models.memory import effective_ctx  # the rule the memory estimate and `rt info` use

        n_ctx = effective_ctx(self.info, options)
        if n_ctx <= 0:
            raise ConfigError(f"--ctx must be positive, got {options.n_ctx}")
        if n_ctx == options.n_ctx:
            return options
        if options.n_ctx > 0:
            logger.info("context %d capped to the %d tokens %s was trained on", options.n_ctx, n_ctx, self.path.name)
        return replace(options, n_ctx=n_ctx)

    def _start_engine(self) -> Engine:
        if self.options.isolate:
            from runtime.process.worker import WorkerEngine

            return WorkerEngine(self.path, self.options, memory=self.memory)
        from runtime.llm.llama_engine import LlamaEngine

        return LlamaEngine(self.path, self.options)

    def _idle_engine(self) -> Engine:
        """The engine, after stopping a stream the caller left unfinished."""
        if self._engine is None:
            raise ConfigError("this Model is closed", hint="create a new Model")
        if self._active is not None:
            self._active.close()
            self._active = None
        return self._engine

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]:
        """Token ids of ``text`` with this model's tokenizer: special tokens written in it are
        parsed, except in the messages' own text of a prompt from :meth:`chat_prompt`."""
        return list(self._idle_engine().tokenize(text, add_special=add_special))

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes (no BOS added)."""
        return len(self.tokenize(text))

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of ``tokens``."""
        return str(self._idle_engine().detokenize(tokens))

    def chat_prompt(self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True) -> str:
        """Render chat messages (``{"role": ..., "content": ...}``) with the GGUF's own template.

        The text is a :class:`~runtime.llm.chat_template.ChatPrompt`: tokenizing it (here, in
        :meth:`stream`, :meth:`count_tokens`) parses special tokens only where the template
        wrote them, so a message's ``<|im_start|>`` stays text.

        Raises :class:`UnsupportedModelError` if the model has no chat template.
        """
        return render_chat(
            self.info.chat_template, messages, add_generation_prompt=add_generation_prompt,
            model_name=self.path.name, **self._idle_engine().special_tokens(),
        )

    def stream(self, prompt: str, options: GenerateOptions = GenerateOptions()) -> Stream:
        """Generate from ``prompt`` (already-templated text), yielding text pieces.

        The KV cache of the previous call is reused for the prompt's common prefix. Raises
        :class:`ContextOverflowError` (with token counts) when the prompt does not fit ``n_ctx``,
        here, before anything is generated.
        """
        engine = self._idle_engine()
        self._active = Stream(engine.stream(prompt, options))
        return self._active

    def yes_no(self, prompt: str, probe: str) -> YesNo | None:
        """The model's P(yes) after ``prompt + probe`` (both already templated), read from its
        next-token logits; the probe's tokens then leave the KV cache and ``prompt``'s stay for
        the next :meth:`stream`. ``None`` when the engine cannot read logits
        (:mod:`runtime.llm.yes_no`)."""
        engine = self._idle_engine()
        if not isinstance(engine, YesNoReader):
            return None
        return engine.yes_no(prompt, probe)

    def complete(self, prompt: str, options: GenerateOptions = GenerateOptions()) -> Completion:
        """Generate from ``prompt`` and return the whole :class:`Completion`."""
        stream = self.stream(prompt, options)
        for _ in stream:
            pass
        assert stream.completion is not None
        return stream.completion

    def close(self) -> None:
        """Free the model (and end its process). Idempotent."""
        if self._engine is not None:
            if self._active is not None and not self._active.closed:
                try:
                    self._active.close()
                except Exception:  # noqa: BLE001 - closing must not fail on a dead stream
                    pass
            self._engine.close()
            self._engine = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
