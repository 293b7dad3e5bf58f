"""The retrieval-augmented path shared by ``rt ask`` (its default) and ``rt chat``.

Opening a :class:`~runtime.rag.rag.RAG`, streaming an answer to stdout, listing its sources, the
``--json`` object, and the notices (what did not fit the context window) on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runtime.config import GenerateOptions, LoadOptions

if TYPE_CHECKING:
    from runtime.rag.answer import Answer
    from runtime.rag.rag import RAG, AnswerStream


def open_rag(model: str | Path | None, index_dir: str | Path | None, load: LoadOptions,
             generate: GenerateOptions, k: int | None) -> RAG:
    """The model and index a command asks (missing ones raise errors that say what to do)."""
    from runtime.rag.rag import RAG

    return RAG.open(model, index_dir, load=load, options=generate, k=k)


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
        label = location_label(display_path(source.path), source.page, source.lines)
        facts = [f"similarity {source.similarity:.2f}" if source.similarity is not None
                 else f"score {source.score:.3f}"]
        if source.n in answer.citations:
            facts.append("cited")
        lines.append(f"  [{source.n}] {label}  ({', '.join(facts)})")
    return lines


def show_notices(notices: list[str]) -> None:
    """What budgeting left out, on stderr (never silent)."""
    for notice in notices:
        click.echo(f"rt: note: {notice}", err=True)


def stream_answer(stream: AnswerStream) -> Answer:
    """Stream the answer's text to stdout, then list its sources; return the :class:`Answer`."""
    show_notices(stream.notices)
    for piece in stream:
        click.echo(piece, nl=False)
        sys.stdout.flush()
    click.echo()
    answer = stream.answer
    assert answer is not None
    if answer.sources:
        click.echo("\nSources:")
        for line in source_lines(answer):
            click.echo(line)
    return answer


def answer_json(answer: Answer, rag: RAG) -> dict[str, Any]:
    """The ``--json`` object: the answer's fields, the model, and the load timings."""
    data = answer.to_dict()
    data["model"] = rag.model.info.name or rag.model.path.stem
    data["model_path"] = str(rag.model.path)
    data["index"] = str(rag.index.folder)
    data["timings"] |= {
        "model_load": rag.load_timings.model_load,
        "embedding_model_load": rag.load_timings.embedding_model_load,
    }
    return data


def ask_with_retrieval(question: str, *, model: str | None, index_dir: str | None, k: int | None,
                       answer_anyway: bool, as_json: bool, load: LoadOptions,
                       generate: GenerateOptions) -> None:
    """``rt ask`` with retrieval: answer from the index, with numbered sources."""
    with open_rag(model, index_dir, load, generate, k) as rag:
        stream = rag.stream(question, answer_anyway=answer_anyway)
        if as_json:
            show_notices(stream.notices)
            click.echo(json.dumps(answer_json(stream.collect(), rag), ensure_ascii=False))
        else:
            stream_answer(stream)
