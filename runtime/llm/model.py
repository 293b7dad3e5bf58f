"""rt's Python API: load a GGUF once, then stream or complete many prompts.

    from runtime.config import GenerateOptions
    from runtime.llm.model import Model
    from runtime.llm.types import Prompt

    with Model() as model:                      # the embedded SmolLM2, or a name/path
        prompt = Prompt([{"role": "user", "content": "What is the capital of France?"}])
        for piece in model.stream(prompt):
            print(piece, end="", flush=True)
        print(model.complete(prompt, GenerateOptions(max_tokens=32)).text)

A :class:`~runtime.llm.types.Prompt` is rendered with the GGUF's own chat template
(:meth:`Model.render`, also :meth:`Model.chat_prompt`); plain text is generated from as it is.

Loading checks the file (:func:`runtime.models.gguf_file.inspect_gguf`) and the memory it needs
(:func:`runtime.models.memory.preflight`) before llama.cpp sees it, then runs the model in a child
process (``LoadOptions.isolate``, the default) so that a native crash or an out-of-memory kill
ends in a :class:`ModelCrashedError` with a diagnosis instead of a silent exit.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from runtime.config import GenerateOptions, LoadOptions
from runtime.errors import ConfigError
from runtime.llm.chat_template import ChatPrompt, render_chat
from runtime.llm.types import Completion, Prompt, Stream
from runtime.llm.yes_no import YesNo, YesNoReader
from runtime.models.registry import resolve_model

if TYPE_CHECKING:
    from runtime.llm.types import Engine

__all__ = ["Completion", "Model", "Prompt", "Stream"]

logger = logging.getLogger(__name__)

# A RAG answer renders one prompt three times (counting it for the budget, showing it, streaming
# it) and its coverage probe once more; the last few renderings are kept.
REMEMBERED_RENDERINGS = 8


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
        self._rendered: OrderedDict[tuple[object, ...], ChatPrompt] = OrderedDict()
        engine = self._start_engine()
        self._engine: Engine | None = engine
        self.n_ctx: int = engine.n_ctx

    @property
    def pid(self) -> int:
        """Id of the process that holds the model (the child with ``isolate``, else this one)."""
        return self._open_engine().pid  # reading it must not stop a stream

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
            from runtime.llm.worker import WorkerEngine

            return WorkerEngine(self.path, self.options, memory=self.memory)
        from runtime.llm.llama_engine import LlamaEngine

        return LlamaEngine(self.path, self.options)

    def _open_engine(self) -> Engine:
        if self._engine is None:
            raise ConfigError("this Model is closed", hint="create a new Model")
        return self._engine

    def _idle_engine(self) -> Engine:
        """The engine, after stopping a stream the caller left unfinished."""
        engine = self._open_engine()
        if self._active is not None:
            self._active.close()
            self._active = None
        return engine

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]:
        """Token ids of ``text`` with this model's tokenizer: special tokens written in it are
        parsed, except in the messages' own text of a prompt from :meth:`render`."""
        return list(self._idle_engine().tokenize(text, add_special=add_special))

    def count_tokens(self, prompt: Prompt | str) -> int:
        """How many tokens ``prompt`` takes (rendered, when a :class:`Prompt`; no BOS added)."""
        return len(self.tokenize(self._text(prompt)))

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of ``tokens``."""
        return str(self._idle_engine().detokenize(tokens))

    def render(self, prompt: Prompt) -> str:
        """``prompt``'s messages rendered with the GGUF's own chat template, then its answer prefix.

        The text is a :class:`~runtime.llm.chat_template.ChatPrompt`: tokenizing it (in
        :meth:`stream`, :meth:`count_tokens`, :meth:`tokenize`) parses special tokens only where
        the template wrote them, so a message's ``<|im_start|>`` stays text.

        Raises :class:`UnsupportedModelError` if the model has no chat template.
        """
        engine = self._open_engine()  # rendering needs no idle engine: a stream may go on
        key = (prompt.key()[0], prompt.add_generation_prompt)  # the prefix is added after
        rendered = self._rendered.get(key)
        if rendered is None:
            rendered = render_chat(
                self.info.chat_template, prompt.messages, add_generation_prompt=prompt.add_generation_prompt,
                model_name=self.path.name, **engine.special_tokens(),
            )
            self._rendered[key] = rendered
            while len(self._rendered) > REMEMBERED_RENDERINGS:
                self._rendered.popitem(last=False)
        self._rendered.move_to_end(key)
        return rendered + prompt.answer_prefix

    def chat_prompt(self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True) -> str:
        """Render chat messages (``{"role": ..., "content": ...}``) with the GGUF's own template:
        :meth:`render` of a :class:`Prompt` of them."""
        return self.render(Prompt(messages, add_generation_prompt=add_generation_prompt))

    def _text(self, prompt: Prompt | str) -> str:
        return self.render(prompt) if isinstance(prompt, Prompt) else prompt

    def stream(self, prompt: Prompt | str, options: GenerateOptions = GenerateOptions()) -> Stream:
        """Generate from ``prompt`` (a :class:`Prompt`, or text taken as it is), yielding text pieces.

        The KV cache of the previous call is reused for the prompt's common prefix. Raises
        :class:`ContextOverflowError` (with token counts) when the prompt does not fit ``n_ctx``,
        here, before anything is generated.
        """
        text = self._text(prompt)
        engine = self._idle_engine()
        self._active = Stream(engine.stream(text, options))
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

    def complete(self, prompt: Prompt | str, options: GenerateOptions = GenerateOptions()) -> Completion:
        """Generate from ``prompt`` and return the whole :class:`Completion`."""
        return self.stream(prompt, options).complete()

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
