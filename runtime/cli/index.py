"""``rt index``: build or update the documents index from folders and files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runtime.cli.options import IndexLocation, UserPath, embed_remote_options, expand_user, remote_embedder_from
from runtime.errors import ConfigError, InputError
from runtime.index.config import VECTOR_INDEXES, IndexOptions

if TYPE_CHECKING:
    from runtime.index import Index
    from runtime.index.index import IndexStats
    from runtime.index.ingest import IndexReport

_DEFAULTS = IndexOptions()


@click.command("push")
@click.argument("source", type=IndexLocation())
@click.option("--to", "target", type=IndexLocation(), required=True,
              help="The index to copy into: a postgresql:// URL or a folder (created if missing).")
@click.option("--wait", type=float, default=0.0, show_default=True,
              help="Seconds to wait for another writer of the target to finish.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def push_command(source: str | Path, target: str | Path, wait: float, as_json: bool) -> None:
    """Copy the index SOURCE (a folder or postgresql:// URL) to --to as it is, without re-embedding.

    The target ends up holding what SOURCE holds; a second push copies only what changed.
    """
    from runtime.index.push import push

    report = push(source, target, wait=wait)
    click.echo(json.dumps(report.to_dict()) if as_json else report.summary())


class _IndexCommand(click.Command):
    """``rt index PATHS...``, and ``rt index push SOURCE --to TARGET`` (a first argument ``push``)."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        if args and args[0] == "push":
            return push_command.make_context("push", args[1:], parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)


@click.command(cls=_IndexCommand)
@click.argument("paths", nargs=-1, type=UserPath(path_type=Path))
@click.option("--index", "index_dir", type=IndexLocation(), default=None,
              help="Index folder or postgresql:// URL [default: RT_INDEX or RT_HOME/index].")
@click.option("--include", multiple=True, metavar="GLOB", help="Only files matching GLOB (repeatable).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files matching GLOB (repeatable).")
@click.option("--follow-symlinks", is_flag=True,
              help="Index the files that symbolic links inside PATHS point to (skipped by default).")
@click.option("--remove", multiple=True, type=UserPath(path_type=Path),
              help="Forget the files at or under this path (repeatable).")
@click.option("--rebuild", is_flag=True, help="Start over: drop everything and re-embed.")
@click.option("--embedding-model", default=None, callback=expand_user,
              help=f"sentence-transformers name or folder [default: {_DEFAULTS.embedding_model}].")
@click.option("--chunk-tokens", type=int, default=None,
              help=f"Chunk size in model tokens [default: {_DEFAULTS.chunk_tokens}].")
@click.option("--overlap", type=int, default=None,
              help=f"Tokens shared by consecutive chunks [default: {_DEFAULTS.overlap_tokens}].")
@click.option("--vector-index", type=click.Choice(VECTOR_INDEXES), default=None,
              help="flat: exact search; hnsw: approximate, for very large collections [default: flat].")
@click.option("--batch-size", type=int, default=_DEFAULTS.batch_size, show_default=True,
              help="Texts per embedding forward pass.")
@click.option("--wait", type=float, default=0.0, show_default=True,
              help="Seconds to wait for another writer of the index to finish.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
@click.option("--watch", "follow", is_flag=True,
              help="After indexing, keep watching PATHS and apply changes as they happen (Ctrl-C stops).")
@embed_remote_options
def index(paths: tuple[Path, ...], index_dir: Path | None, include: tuple[str, ...],
          exclude: tuple[str, ...], follow_symlinks: bool, remove: tuple[Path, ...], rebuild: bool,
          embedding_model: str | None, chunk_tokens: int | None, overlap: int | None,
          vector_index: str | None, batch_size: int, wait: float, as_json: bool, progress: bool,
          follow: bool, **remote: str | None) -> None:
    """Index PATHS (folders or files) for `rt search` and `rt ask`.

    Re-running embeds only new and changed files and forgets deleted ones. Without PATHS,
    every path indexed before is refreshed. `rt index push SOURCE --to URL` copies an index to
    PostgreSQL (or a folder) without re-embedding (`rt index push --help`).
    """
    from runtime import env
    from runtime.index import Index
    from runtime.index.store import DB_NAME

    folder = index_dir or env.default_index()
    url = env.is_index_url(folder)
    for path in paths:
        if not path.exists():
            raise InputError(f"{path} does not exist", hint="check the path given to rt index")
    if follow and not paths:
        raise InputError("--watch needs the folders to watch", hint="e.g. `rt index ~/Documents --watch`")
    if not paths and not remove and not url and not (Path(folder) / DB_NAME).exists():
        raise InputError("nothing to index yet", hint="give a folder or file, e.g. `rt index ~/Documents`")
    options = IndexOptions(
        chunk_tokens=chunk_tokens or _DEFAULTS.chunk_tokens,
        overlap_tokens=_DEFAULTS.overlap_tokens if overlap is None else overlap,
        vector_index=vector_index or _DEFAULTS.vector_index, batch_size=batch_size,
        embedding_model=embedding_model or _DEFAULTS.embedding_model)
    # --remove alone never creates an index: there is nothing to remove from a missing one
    embedder = remote_embedder_from(remote)
    with Index.open(folder, create=bool(paths) or not (remove or url), embedding_model=embedding_model, options=options,
                    rebuild=rebuild, wait=wait, embedder=embedder) as idx:
        if not rebuild:
            _check_recorded(idx.options, chunk_tokens, overlap, vector_index)
        removed = idx.remove(remove) if remove else []
        if follow:
            _follow(idx, paths, include, exclude, follow_symlinks, as_json, progress, removed)
            return
        if paths:
            report = idx.add(paths, include=include, exclude=exclude, progress=progress,
                             follow_symlinks=follow_symlinks)
        elif remove and not rebuild:
            report = None
        else:
            report = idx.refresh(progress=progress, follow_symlinks=follow_symlinks)
        _show(report, removed, idx.stats(), as_json)


def _show(report: IndexReport | None, removed: list[str], stats: IndexStats, as_json: bool) -> None:
    """Print one run's report: a JSON object, or the summary and the index's size."""
    from runtime.fsutil import human_bytes

    if report is not None:
        for bad, why in report.problems:
            click.echo(f"rt: skipped {bad}: {why}", err=True)
    if as_json:
        click.echo(json.dumps(_as_dict(report, removed, stats)))
        return
    if removed:
        click.echo(f"removed {len(removed)} file(s) from the index")
    if report is not None:
        click.echo(report.summary())
    click.echo(f"index {stats.location}: {stats.documents} files, {stats.chunks} chunks, "
               f"{human_bytes(stats.size_bytes)} ({stats.embedding_model})")


def _follow(idx: Index, paths: tuple[Path, ...], include: tuple[str, ...], exclude: tuple[str, ...],
            follow_symlinks: bool, as_json: bool, progress: bool, removed: list[str]) -> None:
    """Index ``paths`` and watch them until Ctrl-C, printing what each batch of changes did:
    with ``as_json``, one JSON object per line and batch (the first is the first pass's)."""
    from runtime.index.watch import WatchPass, watch

    passes = 0

    def show(done: WatchPass) -> None:
        nonlocal passes
        passes += 1
        if passes == 1:
            _show(done.report, removed, idx.stats(), as_json)
            click.echo(f"watching {len(paths)} path(s); Ctrl-C to stop", err=True)
            return
        for old, new in done.renamed:
            if not as_json:
                click.echo(f"renamed {old} -> {new}")
        report = done.report
        if report is None:
            return
        for bad, why in report.problems:
            click.echo(f"rt: skipped {bad}: {why}", err=True)
        if as_json:  # the keys of the first pass's
            click.echo(json.dumps(_as_dict(report, [], idx.stats())))
        elif report.changed or done.renamed:
            click.echo(report.summary())

    try:
        watch(idx, paths, include=include, exclude=exclude, on_pass=show, first_pass=True,
              follow_symlinks=follow_symlinks, progress=progress)
    except KeyboardInterrupt:
        click.echo("stopped watching; the index is committed", err=True)


def _check_recorded(options: IndexOptions, chunk_tokens: int | None, overlap: int | None,
                    vector_index: str | None) -> None:
    """Explicit chunking options must match the index's, unless rebuilding."""
    for flag, given, recorded in (("--chunk-tokens", chunk_tokens, options.chunk_tokens),
                                  ("--overlap", overlap, options.overlap_tokens),
                                  ("--vector-index", vector_index, options.vector_index)):
        if given is not None and given != recorded:
            raise ConfigError(f"this index was built with {flag} {recorded}, not {given}",
                              hint="add --rebuild to re-chunk and re-embed everything")


def _as_dict(report, removed: list[str], stats) -> dict:  # type: ignore[no-untyped-def]
    data: dict = {"removed_paths": removed}
    if stats is not None:
        data.update(index=stats.location, documents=stats.documents, chunks=stats.chunks,
                    embedding_model=stats.embedding_model, size_bytes=stats.size_bytes)
    if report is not None:
        data.update(added=report.added, updated=report.updated, removed=report.removed,
                    unchanged=report.unchanged, skipped=dict(report.skipped),
                    skipped_files=report.skipped_files,
                    problems=[{"path": p, "reason": r} for p, r in report.problems],
                    no_text=report.empty, pages_without_text=report.pages_without_text,
                    chunks_embedded=report.chunks_embedded, chunks_reused=report.chunks_reused,
                    seconds=round(report.seconds, 3))
    return data
