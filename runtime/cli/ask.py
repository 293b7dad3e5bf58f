"""``rt ask QUESTION``: answer a question, streaming the answer to stdout.

By default the answer comes from the indexed documents, with numbered sources
(:mod:`runtime.cli.answering`, :mod:`runtime.rag.rag`). With ``--no-rag`` the model answers alone;
then ``--json`` prints ``{answer, model, usage{prompt_tokens, completion_tokens,
cached_tokens}, timings{...}, finish_reason}``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import replace
from typing import Any

import click

from runtime.llm.chat_template import DEFAULT_SYSTEM_PROMPT, plain_prompt, question_messages
from runtime.cli.options import (
    generate_options_from,
    load_options_from,
    model_options,
    sampling_options,
    show_warnings,
)
from runtime.config import GenerateOptions
from runtime.errors import ConfigError, InputError
from runtime.llm.generation import Completion

logger = logging.getLogger("runtime.cli.ask")


def completion_json(completion: Completion, model: Any, load_seconds: float) -> dict[str, Any]:
    """The ``--json`` object for one answer."""
    return {
        "answer": completion.text,
        "model": model.path.stem,
        "model_path": str(model.path),
        "usage": {
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "cached_tokens": completion.cached_tokens,
        },
        "timings": {
            "load_seconds": round(load_seconds, 4),
            "prompt_seconds": round(completion.prompt_seconds, 4),
            "generation_seconds": round(completion.generation_seconds, 4),
            "tokens_per_second": round(completion.tokens_per_second, 2),
        },
        "finish_reason": completion.finish_reason,
    }


def chat_or_plain_prompt(model: Any, messages: list[dict[str, str]],
                         generate: GenerateOptions) -> tuple[str, GenerateOptions]:
    """The model's chat prompt; for a base model without a chat template, a plain
    ``Question:``/``Answer:`` prompt (with a warning) and stop strings that end its answer."""
    if model.info.chat_template:
        return model.chat_prompt(messages), generate
    logger.warning("%s has no chat template (a base model?); using a plain Question/Answer prompt",
                   model.path.name)
    prompt, stops = plain_prompt(messages)
    return prompt, replace(generate, stop=tuple(generate.stop) + stops)


def stream_to_stdout(stream: Any) -> None:
    """Echo a :class:`runtime.llm.model.Stream`'s pieces as they come, then a newline; warn on
    stderr when the answer was cut short."""
    for piece in stream:
        click.echo(piece, nl=False)
        sys.stdout.flush()
    click.echo()
    sys.stdout.flush()
    completion = stream.completion
    if completion is not None and completion.finish_reason == "length":
        logger.warning("the answer was cut at %d tokens (raise --max-tokens, or --ctx if the context is full)",
                       completion.completion_tokens)


@click.command()
@click.argument("question")
@click.option("--index", "index_dir", type=click.Path(file_okay=False), default=None,
              help="Documents index to retrieve from [default: RT_INDEX or RT_HOME/index].")
@click.option("-k", "k", type=click.IntRange(min=1), default=None,
              help="Passages to retrieve [default: the index's setting].")
@click.option("--answer-anyway", is_flag=True,
              help="When the documents do not cover the question, let the model answer on its own "
                   "(marked as not from the documents).")
@click.option("--no-rag", is_flag=True, help="Answer from the model alone, without retrieval.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming.")
@click.option("--system", default=None, metavar="TEXT",
              help=f"System prompt (with --no-rag) [default: {DEFAULT_SYSTEM_PROMPT!r}].")
@model_options
@sampling_options
def ask(question: str, index_dir: str | None, k: int | None, answer_anyway: bool, no_rag: bool,
        as_json: bool, system: str | None, **params: Any) -> None:
    """Answer QUESTION from your indexed documents, citing numbered sources.

    \b
      rt index ~/notes && rt ask "when is the rent due?"
      rt ask --no-rag "What is the capital of France?"     # the model alone
    """
    if not question.strip():
        raise InputError("the question is empty", hint='ask something: rt ask --no-rag "..."')
    show_warnings()
    load, generate = load_options_from(params), generate_options_from(params)
    if system is not None and not no_rag:
        raise ConfigError("--system applies to --no-rag only",
                          hint="with retrieval rt's own instruction asks the model to cite the sources; "
                               "add --no-rag to use your system prompt")
    if not no_rag:
        from runtime.cli.answering import ask_with_retrieval

        ask_with_retrieval(question, model=params["model"], index_dir=index_dir, k=k,
                           answer_anyway=answer_anyway, as_json=as_json, load=load, generate=generate)
        return

    from runtime.llm.model import Model

    started = time.perf_counter()
    with Model(params["model"], load) as model:
        load_seconds = time.perf_counter() - started
        prompt, generate = chat_or_plain_prompt(model, question_messages(question, system or DEFAULT_SYSTEM_PROMPT),
                                                generate)
        if as_json:
            completion = model.complete(prompt, generate)
            click.echo(json.dumps(completion_json(completion, model, load_seconds), ensure_ascii=False))
        else:
            stream_to_stdout(model.stream(prompt, generate))
