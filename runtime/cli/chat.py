"""``rt chat``: ask one question per line from stdin, answered from the index, turn after turn.

Every turn retrieves again. Earlier turns go into the prompt before the new sources, so the
model's KV cache is reused for them (:class:`runtime.rag.rag.Chat`). Reads until end of input or a
line ``exit``/``quit``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import click

from runtime.cli.answering import (
    answer_json,
    check_strict,
    index_location,
    open_rag,
    show_notices,
    stream_answer,
    warn_loop,
)
from runtime.cli.options import (
    IndexLocation,
    generate_options_from,
    load_options_from,
    model_options,
    pack_option,
    packing_options_from,
    remote_from,
    remote_options,
    sampling_options,
    show_warnings,
)
from runtime.cli.text_input import read_line, repair_text
from runtime.errors import ContextOverflowError, InputError

EXIT_WORDS = ("exit", "quit")


@click.command()
@click.option("--index", "index_dir", type=IndexLocation(), default=None,
              help="Documents index to retrieve from [default: RT_INDEX or RT_HOME/index].")
@click.option("-k", "k", type=click.IntRange(min=1), default=None,
              help="Passages to retrieve per turn [default: the index's setting].")
@click.option("--answer-anyway", is_flag=True,
              help="When the documents do not cover a question, let the model answer on its own.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per turn (one per line).")
@click.option("--strict", is_flag=True,
              help="Exit with status 4 at the end when an answer had no sentence supported by its sources.")
@pack_option
@model_options
@sampling_options
@remote_options
def chat(index_dir: str | None, k: int | None, answer_anyway: bool, as_json: bool, strict: bool,
         **params: Any) -> None:
    """Chat about your indexed documents: one question per line, until end of input or `exit`.

    \b
      rt chat
      printf 'What is mmap?\\nAnd the KV cache?\\n' | rt chat --json
    """
    show_warnings()
    load, generate = load_options_from(params), generate_options_from(params)
    failed = unsupported = 0
    with open_rag(params["model"], index_dir, load, generate, k, remote_from(params),
                  packing_options_from(params)) as rag:
        conversation = rag.chat(answer_anyway=answer_anyway)
        for question in _questions():
            try:
                stream = conversation.stream(question)
            except ContextOverflowError as exc:  # one bad turn does not end the chat
                from runtime.cli import render_error

                render_error(str(exc))
                failed += 1
                continue
            if as_json:
                show_notices(stream.notices)
                answer = stream.collect()
                warn_loop(answer)
                data = answer_json(answer, rag.model, index_location(rag.index), rag.load_timings)
                click.echo(json.dumps(data, ensure_ascii=False))
            else:
                answer = stream_answer(stream)
                click.echo()
            sys.stdout.flush()
            unsupported += check_strict(answer, strict=False)
    if strict and unsupported:
        from runtime.errors import UnsupportedAnswerError

        raise UnsupportedAnswerError(f"{unsupported} answer(s) had no sentence supported by the sources they cite",
                                     hint="check them against the sources")
    if failed:
        raise InputError(f"{failed} question(s) did not fit the context window and were not answered",
                         hint="shorten them or raise --ctx")


def _questions() -> Iterator[str]:
    """Non-empty lines from stdin until EOF or an exit word; a prompt on stderr when interactive."""
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            click.echo("> ", nl=False, err=True)
        line = read_line()
        if not line:
            return
        question = repair_text(line.strip())  # an argument-like surrogate from a lenient stdin
        if question.lower() in EXIT_WORDS:
            return
        if question:
            yield question
