"""``rt ask QUESTION``: answer a question, streaming the answer to stdout.

By default the answer comes from the indexed documents, with numbered sources
(:mod:`runtime.cli.answering`, :mod:`runtime.rag.rag`). With ``--no-rag`` the model answers alone
(:mod:`runtime.rag.direct`). ``--json`` prints one object with the same keys either way
(docs/asking.md): without retrieval ``sources`` is empty and ``covered`` is null.
"""

from __future__ import annotations

from typing import Any

import click

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
from runtime.errors import ConfigError, InputError
from runtime.llm.chat_template import DEFAULT_SYSTEM_PROMPT


@click.command()
@click.argument("question")
@click.option("--index", "index_dir", type=IndexLocation(), default=None,
              help="Documents index to retrieve from [default: RT_INDEX or RT_HOME/index].")
@click.option("-k", "k", type=click.IntRange(min=1), default=None,
              help="Passages to retrieve [default: the index's setting].")
@click.option("--answer-anyway", is_flag=True,
              help="When the documents do not cover the question, let the model answer on its own "
                   "(marked as not from the documents).")
@click.option("--strict", is_flag=True,
              help="Exit with status 4 when no sentence of the answer is supported by the sources it cites.")
@click.option("--no-rag", is_flag=True, help="Answer from the model alone, without retrieval.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming.")
@click.option("--system", default=None, metavar="TEXT",
              help=f"System prompt (with --no-rag) [default: {DEFAULT_SYSTEM_PROMPT!r}].")
@pack_option
@model_options
@sampling_options
@remote_options
def ask(question: str, index_dir: str | None, k: int | None, answer_anyway: bool, strict: bool,
        no_rag: bool, as_json: bool, system: str | None, **params: Any) -> None:
    """Answer QUESTION from your indexed documents, citing numbered sources.

    \b
      rt index ~/notes && rt ask "when is the rent due?"
      rt ask --no-rag "What is the capital of France?"     # the model alone
    """
    from runtime.cli.text_input import repair_text

    question = repair_text(question)  # an argument byte that is not UTF-8 becomes U+FFFD
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
                           answer_anyway=answer_anyway, as_json=as_json, load=load, generate=generate,
                           strict=strict, remote=remote_from(params), packing=packing_options_from(params))
        return
    from runtime.cli.answering import ask_without_retrieval

    ask_without_retrieval(question, model=params["model"], system=system, as_json=as_json, load=load,
                          generate=generate, remote=remote_from(params))
