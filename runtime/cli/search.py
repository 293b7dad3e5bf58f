"""``rt search``: the chunks of the index that best match a query."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from runtime.cli.options import IndexLocation, embed_remote_options, expand_user, remote_embedder_from
from runtime.errors import InputError
from runtime.index.config import MODES, IndexOptions

_DEFAULTS = IndexOptions()


@click.command()
@click.argument("query")
@click.option("-k", "k", type=int, default=_DEFAULTS.k, show_default=True, help="Number of hits.")
@click.option("--mode", type=click.Choice(MODES), default=_DEFAULTS.mode, show_default=True,
              help="hybrid: meaning and keywords fused; dense: meaning only; keyword: BM25 only.")
@click.option("--index", "index_dir", type=IndexLocation(), default=None,
              help="Index folder or postgresql:// URL [default: RT_INDEX or RT_HOME/index].")
@click.option("--embedding-model", default=None, callback=expand_user,
              help="Must match the model the index was built with.")
@click.option("--rerank", "rerank_model", default=None, callback=expand_user, metavar="MODEL",
              help="Rescore the first hits with a sentence-transformers CrossEncoder (folder or HF repo).")
@click.option("--json", "as_json", is_flag=True,
              help="A JSON list of {path, page, lines, location, score, similarity, text} (one list per query).")
@embed_remote_options
def search(query: str, k: int, mode: str, index_dir: Path | None, embedding_model: str | None,
           rerank_model: str | None, as_json: bool, **remote: str | None) -> None:
    """Search the index for QUERY; `-` reads one query per line from stdin."""
    from runtime.cli.text_input import repair_text, stdin_lines
    from runtime.index import Index

    if k < 1:
        raise InputError(f"-k must be at least 1, not {k}")
    queries = (line.strip() for line in stdin_lines()) if query == "-" else iter([repair_text(query)])
    with Index.open(index_dir, embedding_model=embedding_model, embedder=remote_embedder_from(remote)) as idx:
        if rerank_model:
            from runtime.index.rerank import CrossEncoderReranker

            idx.reranker = CrossEncoderReranker(rerank_model, progress=True)
        for text in queries:
            if not text:
                if query != "-":
                    raise InputError("the query is empty", hint='rt search "what to look for"')
                continue
            hits = idx.search(text, k, mode=mode)
            if as_json:
                click.echo(json.dumps([_hit_dict(h) for h in hits], ensure_ascii=False))
            else:
                _print_hits(text, hits, several=query == "-")
            sys.stdout.flush()


def _hit_dict(hit) -> dict:  # type: ignore[no-untyped-def]
    return {"path": hit.path, "page": hit.page, "lines": list(hit.lines) if hit.lines else None,
            "location": hit.location,
            "score": hit.score, "similarity": hit.similarity, "chunk_id": hit.chunk_id, "text": hit.text}


def _print_hits(query: str, hits: Sequence, *, several: bool) -> None:  # type: ignore[type-arg]
    if several:
        click.echo(f"# {query}")
    if not hits:
        click.echo("no matches", err=True)
    from runtime.cli.answering import display_path
    from runtime.rag.prompt import where_label

    for rank, hit in enumerate(hits, start=1):
        where = where_label(hit.page, hit.lines, hit.location)
        similarity = f"  similarity {hit.similarity:.2f}" if hit.similarity is not None else ""
        click.echo(f"{rank}. {display_path(hit.path)}  {where}  score {hit.score:.4g}{similarity}")
        snippet = " ".join(hit.text.split())
        click.echo(f"   {snippet[:240]}{'…' if len(snippet) > 240 else ''}")
    if several:
        click.echo("")
