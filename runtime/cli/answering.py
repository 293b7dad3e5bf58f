"""Answering shared by ``rt ask`` (with and without ``--no-rag``) and ``rt chat``.

Opening a :class:`~runtime.rag.rag.RAG`, streaming an answer to stdout, listing its sources, the
``--json`` object (one shape for every answer, see docs/asking.md), and the notices (what did
not fit the context window) on stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runtime.config import GenerateOptions, LoadOptions
from runtime.rag.config import PackingOptions

if TYPE_CHECKING:
    from runtime.llm.types import LanguageModel
    from runtime.rag.answer import Answer
    from runtime.rag.rag import RAG, AnswerStream, LoadTimings

logger = logging.getLogger("runtime.cli.answering")


def open_rag(model: str | Path | None, index_dir: str | Path | None, load: LoadOptions,
             generate: GenerateOptions, k: int | None, remote: Any = None,
             packing: PackingOptions = PackingOptions()) -> RAG:
    """The model and index a command asks (missing ones raise errors that say what to do);
    ``remote``: the command's --llm-url/--embed-url endpoints; ``packing``: --pack/--no-pack."""
    from runtime.rag.rag import RAG

    return RAG.open(model, index_dir, load=load, options=generate, k=k, remote=remote, packing=packing)


def display_path(path: str) -> str:
    """``path`` relative to the current folder when it lies under it (shorter to read)."""
    try:
        relative = Path(path).relative_to(Path.cwd())
    except ValueError:
        return path
    return str(relative)


def source_lines(answer: Answer) -> list[str]:
    """``[n] path, lines a-b  (similarity 0.66, cited)`` for each source given to the model."""
    from runtime.rag.prompt import location_label

    lines = []
    for source in answer.sources:
        label = location_label(display_path(source.path), source.page, source.lines, source.location)
        facts = [f"similarity {source.similarity:.2f}" if source.similarity is not None
                 else f"score {source.score:.3f}"]
        if source.n in answer.citations:
            facts.append("cited")
        lines.append(f"  [{source.n}] {label}  ({', '.join(facts)})")
    return lines


def evidence_lines(answer: Answer) -> list[str]:
    """Under the answer: for each sentence, the quoted source sentence that supports it (with
    path and lines), or why it is unsupported."""
    from runtime.rag.evidence import bare_claim
    from runtime.rag.prompt import location_label

    lines = []
    for claim in answer.claims:
        if claim.supported:
            best = claim.evidence[0]
            label = location_label(display_path(best.path), best.page, best.lines)
            lines.append(f'  [{best.n}] "{best.text}"  ({label})')
            continue
        said = bare_claim(claim.text) or claim.text
        if not claim.cites:
            why = "cites no source"
        elif not claim.evidence:
            why = f"cites [{', '.join(map(str, claim.cites))}], which was not given"
        else:
            why = f"not found in [{', '.join(map(str, claim.cites))}]"
        lines.append(f'  unsupported: "{said}" ({why})')
    return lines


def check_strict(answer: Answer, strict: bool) -> bool:
    """Warn on stderr when an answer from the documents has no supported sentence; return whether
    it was such an answer. With ``strict`` that is an error (non-zero exit)."""
    from runtime.errors import UnsupportedAnswerError

    if answer.supported is not False:
        return False
    message = "no sentence of this answer is supported by the sources it cites"
    if strict:
        raise UnsupportedAnswerError(message, hint="check it against the sources, or rephrase the question")
    click.echo(f"rt: note: {message}; check it against the sources", err=True)
    return True


def show_notices(notices: list[str]) -> None:
    """What budgeting left out, on stderr (never silent)."""
    for notice in notices:
        click.echo(f"rt: note: {notice}", err=True)


def stream_answer(stream: AnswerStream) -> Answer:
    """Stream the answer's text to stdout, then list its sources; return the :class:`Answer`.

    Warns on stderr when the answer was cut short by ``--max-tokens`` or a full context.
    """
    show_notices(stream.notices)
    for piece in stream:
        click.echo(piece, nl=False)
        sys.stdout.flush()
    click.echo()
    sys.stdout.flush()
    answer = stream.answer
    assert answer is not None
    if answer.finish_reason == "length":
        logger.warning("the answer was cut at %d tokens (raise --max-tokens, or --ctx if the context is full)",
                       answer.usage.completion_tokens)
    warn_loop(answer)
    if answer.sources:
        click.echo("\nSources:")
        for line in source_lines(answer):
            click.echo(line)
    if answer.claims:
        click.echo("\nEvidence:")
        for line in evidence_lines(answer):
            click.echo(line)
    return answer


def warn_loop(answer: Answer) -> None:
    """One line on stderr when the model fell into a loop and was stopped (``finish_reason``
    ``"loop"``), whatever the output format: the text before the stop may read as an answer."""
    if answer.finish_reason == "loop":
        logger.warning("the model began repeating itself, so its answer was stopped after %d tokens; "
                       "read it with care (a larger model loops less: rt models, --model)",
                       answer.usage.completion_tokens)


def index_location(index: Any) -> str:
    """Where an index is, as ``--json`` shows it: its folder, or its URL without credentials."""
    return str(index.location)


def answer_json(answer: Answer, model: LanguageModel, index: str | Path | None, load: LoadTimings) -> dict[str, Any]:
    """The ``--json`` object: the answer's fields, the model, the index (``None`` without
    retrieval) and the load timings; the same keys for every answer (docs/asking.md)."""
    data = answer.to_dict()
    data["model"] = model.path.stem
    data["model_path"] = str(model.path)
    data["index"] = str(index) if index is not None else None
    data["timings"] |= {
        "model_load": load.model_load,
        "embedding_model_load": load.embedding_model_load,
        # the same key for every model; a remote one loads nothing here
        "loading": {"repack": getattr(getattr(model, "repack", None), "to_dict", lambda: None)()},
    }
    return data


def ask_without_retrieval(question: str, *, model: str | None, system: str | None, as_json: bool,
                          load: LoadOptions, generate: GenerateOptions, remote: Any = None) -> None:
    """``rt ask --no-rag``: the model's own answer, printed as :func:`ask_with_retrieval` prints it."""
    import time

    from runtime.llm.chat_template import DEFAULT_SYSTEM_PROMPT
    from runtime.llm.model import Model
    from runtime.rag.direct import ask_model
    from runtime.rag.rag import LoadTimings

    started = time.perf_counter()
    with (remote.model() if remote is not None and remote.llm_url else Model(model, load)) as loaded:
        timings = LoadTimings(model_load=time.perf_counter() - started)
        stream = ask_model(loaded, question, system=system or DEFAULT_SYSTEM_PROMPT, options=generate)
        if as_json:
            answer = stream.collect()
            warn_loop(answer)
            click.echo(json.dumps(answer_json(answer, loaded, None, timings), ensure_ascii=False))
        else:
            stream_answer(stream)


def ask_with_retrieval(question: str, *, model: str | None, index_dir: str | None, k: int | None,
                       answer_anyway: bool, as_json: bool, load: LoadOptions,
                       generate: GenerateOptions, strict: bool = False, remote: Any = None,
                       packing: PackingOptions = PackingOptions()) -> None:
    """``rt ask`` with retrieval: answer from the index, with numbered sources and the evidence
    for each sentence. ``strict``: an answer with no supported sentence is an error."""
    with open_rag(model, index_dir, load, generate, k, remote, packing) as rag:
        stream = rag.stream(question, answer_anyway=answer_anyway)
        if as_json:
            show_notices(stream.notices)
            answer = stream.collect()
            warn_loop(answer)
            data = answer_json(answer, rag.model, index_location(rag.index), rag.load_timings)
            click.echo(json.dumps(data, ensure_ascii=False))
        else:
            answer = stream_answer(stream)
        check_strict(answer, strict)
