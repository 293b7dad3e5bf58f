"""Options shared by the commands that run a model (``rt ask``, ``rt chat``), in one place.

Defaults come from :class:`LoadOptions` and :class:`GenerateOptions`; a command decorates
itself with :func:`model_options` and :func:`sampling_options` and turns the parsed values
into the dataclasses with :func:`load_options_from` and :func:`generate_options_from`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from runtime import env
from runtime.config import KV_TYPES, GenerateOptions, LoadOptions
from runtime.rag.config import PackingOptions

F = TypeVar("F", bound=Callable[..., Any])

_LOAD = LoadOptions()
_GENERATE = GenerateOptions()


class UserPath(click.Path):
    """A ``click.Path`` that expands ``~`` before anything looks at the path.

    bash expands ``~`` itself; PowerShell and cmd pass it literally, so without this
    ``rt index ~/Documents/notes`` said the folder did not exist and ``rt convert --out ~/m.gguf``
    wrote into a folder named ``~``.
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (str, os.PathLike)):
            value = os.path.expanduser(os.fspath(value))
        return super().convert(value, param, ctx)


class IndexLocation(UserPath):
    """``--index``: a folder (``~`` expanded, as :class:`UserPath`) or a ``postgresql://`` URL,
    which is passed on as text (a ``Path`` would fold its ``//``)."""

    name = "folder or URL"

    def __init__(self) -> None:
        super().__init__(file_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from runtime.env import is_index_url

        if is_index_url(value):
            return value
        return super().convert(value, param, ctx)


def expand_user(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Click callback for options that take a name *or* a path (``--model``, ``--from``): ``~`` expanded,
    anything else (a registry name, a hub repo id) left as it is."""
    if isinstance(value, str) and value.startswith("~"):
        return os.path.expanduser(value)
    return value


def _apply(f: F, decorators: list[Callable[[F], F]]) -> F:
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def model_options(f: F) -> F:
    """``--model --ctx --kv-type --threads --repack --force --verbose``."""
    return _apply(f, [
        click.option("--model", "-m", "model", default=None, metavar="NAME|PATH", callback=expand_user,
                     help="Registered model name or GGUF path [default: RT_MODEL, the registry default, "
                          "else the embedded SmolLM2]."),
        click.option("--ctx", "n_ctx", type=click.IntRange(min=0), default=_LOAD.n_ctx, show_default=True,
                     help="Context window in tokens (0: the model's trained context)."),
        click.option("--kv-type", type=click.Choice(KV_TYPES), default=_LOAD.kv_type, show_default=True,
                     help="KV cache type; q8_0 halves its memory."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="CPU threads [default: the cores this process may use]."),
        click.option("--repack/--no-repack", default=_LOAD.repack,
                     help="Generate on repacked weights (faster, a second copy in memory; tested in a child "
                          "first) [default: auto, where it fits; `rt info` says what auto chooses]."),
        click.option("--force", is_flag=True, default=_LOAD.force,
                     help="Load even if the memory preflight says it will not fit."),
        click.option("--verbose", is_flag=True, default=_LOAD.verbose, help="Show llama.cpp's own log."),
    ])


def sampling_options(f: F) -> F:
    """``--max-tokens --temperature --top-p --seed --stop --prompt-lookup``."""
    return _apply(f, [
        click.option("--max-tokens", type=click.IntRange(min=1), default=_GENERATE.max_tokens, show_default=True,
                     help="Most tokens to generate."),
        click.option("--temperature", type=click.FloatRange(min=0), default=_GENERATE.temperature,
                     show_default=True, help="0 is greedy and deterministic."),
        click.option("--top-p", type=click.FloatRange(0, 1), default=_GENERATE.top_p, show_default=True,
                     help="Nucleus sampling (with --temperature > 0)."),
        click.option("--seed", type=int, default=_GENERATE.seed, show_default=True,
                     help="Sampling seed (with --temperature > 0)."),
        click.option("--stop", multiple=True, metavar="TEXT", help="Stop when this text appears (repeatable)."),
        click.option("--prompt-lookup/--no-prompt-lookup", default=_GENERATE.prompt_lookup, show_default=True,
                     help="Draft tokens by copying from the prompt and verify them in one batch "
                          "(greedy only; plain decoding with --temperature > 0)."),
    ])


def pack_option(f: F) -> F:
    """``--pack/--no-pack``: the sentences of each passage closest to the question, or whole chunks."""
    return click.option("--pack/--no-pack", "pack", default=PackingOptions().enabled, show_default=True,
                        help="Give the model only the sentences of each passage closest to the question "
                             "(fewer prompt tokens; docs/asking.md), or whole chunks.")(f)


def packing_options_from(params: Mapping[str, Any]) -> PackingOptions:
    """The :class:`PackingOptions` of ``--pack/--no-pack``."""
    return PackingOptions(enabled=params.get("pack", PackingOptions().enabled))


def remote_options(f: F) -> F:
    """``--llm-url --llm-model --llm-api-key --embed-url``: generate or embed on OpenAI-compatible servers."""
    return _apply(f, [
        click.option("--llm-url", default=None, metavar="URL",
                     help="Generate with this OpenAI-compatible server (llama-server, vLLM, Ollama, rt serve) "
                          "instead of a local model [default: RT_LLM_URL]."),
        click.option("--llm-model", default=None, metavar="NAME",
                     help="Model name on the --llm-url server [default: the first it lists]."),
        click.option("--llm-api-key", default=None, metavar="KEY",
                     help="Bearer token for the --llm-url and --embed-url servers [default: RT_LLM_API_KEY]."),
        click.option("--embed-url", default=None, metavar="URL",
                     help="Embed queries with this OpenAI-compatible /v1/embeddings server; it must serve the "
                          "model the index was built with [default: RT_EMBED_URL]."),
    ])


def embed_remote_options(f: F) -> F:
    """``--embed-url --llm-api-key``: embed on an OpenAI-compatible server (``rt index``, ``rt search``)."""
    return _apply(f, [
        click.option("--embed-url", default=None, metavar="URL",
                     help="Embed with this OpenAI-compatible /v1/embeddings server; an index keeps the "
                          "name of the model that built it [default: RT_EMBED_URL]."),
        click.option("--llm-api-key", default=None, metavar="KEY",
                     help="Bearer token for the --embed-url server [default: RT_LLM_API_KEY]."),
    ])


def remote_embedder_from(params: Mapping[str, Any]) -> Any:
    """The remote embedder of a command's :func:`embed_remote_options`, or ``None`` (local)."""
    from runtime.rag.endpoints import RemoteEndpoints

    remote = RemoteEndpoints.from_options(embed_url=params["embed_url"], api_key=params["llm_api_key"])
    return remote.embedder() if remote is not None and remote.embed_url else None


def remote_from(params: Mapping[str, Any]) -> Any:
    """The :class:`~runtime.rag.endpoints.RemoteEndpoints` of a command's :func:`remote_options`
    (``None``: everything local)."""
    from runtime.rag.endpoints import RemoteEndpoints

    return RemoteEndpoints.from_options(params["llm_url"], params["llm_model"], params["embed_url"],
                                        params["llm_api_key"])


def load_options_from(params: Mapping[str, Any]) -> LoadOptions:
    """The :class:`LoadOptions` of a command's parsed :func:`model_options`."""
    return LoadOptions(
        n_ctx=params["n_ctx"], kv_type=params["kv_type"], threads=params["threads"],
        repack=params["repack"], force=params["force"], verbose=params["verbose"],
    )


def generate_options_from(params: Mapping[str, Any]) -> GenerateOptions:
    """The :class:`GenerateOptions` of a command's parsed :func:`sampling_options` (and
    ``RT_LOOP_STOP``)."""
    options = GenerateOptions(
        max_tokens=params["max_tokens"], temperature=params["temperature"], top_p=params["top_p"],
        seed=params["seed"], stop=tuple(params["stop"]), prompt_lookup=params["prompt_lookup"],
    )
    return options if env.loop_stop() else replace(options, stop_repeats=0, stop_near_repeats=0.0)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (Click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


def show_warnings() -> None:
    """Show the library's warnings on stderr as ``rt: warning: ...`` (once per process)."""
    root = logging.getLogger("runtime")
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler(logging.WARNING)
        handler.setFormatter(logging.Formatter("rt: warning: %(message)s"))
        root.addHandler(handler)
