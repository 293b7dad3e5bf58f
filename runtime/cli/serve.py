"""``rt serve``: the OpenAI-compatible HTTP server (:mod:`runtime.serve`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from runtime import env
from runtime.cli.options import (
    IndexLocation,
    load_options_from,
    model_options,
    remote_from,
    remote_options,
    show_warnings,
)
from runtime.errors import ConfigError
from runtime.index.store import DB_NAME
from runtime.redact import redact_credentials
from runtime.serve.config import ServeOptions

_SERVE = ServeOptions()


@click.command()
@click.option("--host", default=_SERVE.host, show_default=True,
              help="Address to listen on (anything but loopback needs an API key, or --insecure).")
@click.option("--port", type=click.IntRange(1, 65535), default=_SERVE.port, show_default=True)
@click.option("--index", "indexes", multiple=True, type=IndexLocation(),
              help="Index folder a request's \"rag\" may use (repeatable; the first is the default) "
                   "[default: RT_INDEX or RT_HOME/index, if built].")
@click.option("--api-key", default=None, metavar="KEY",
              help="Require 'Authorization: Bearer KEY' (visible in ps: prefer --api-key-file or "
                   "RT_API_KEY) [default: RT_API_KEY].")
@click.option("--api-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PATH",
              help="Read the key from PATH (one line).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Also serve requests whose Host or Origin is NAME (repeatable; '*' turns the check off).")
@click.option("--insecure", is_flag=True, default=False,
              help="Listen on a non-loopback address without an API key.")
@click.option("--max-queue", type=click.IntRange(min=0), default=_SERVE.max_queue, show_default=True,
              help="Requests that may wait for the model; more are answered 429 with Retry-After.")
@model_options
@remote_options
def serve(host: str, port: int, indexes: tuple[str | Path, ...], api_key: str | None, api_key_file: Path | None,
          allowed_hosts: tuple[str, ...], insecure: bool, max_queue: int, **params: Any) -> None:
    """Serve the model over an OpenAI-compatible HTTP API (chat, completions, embeddings, RAG)."""
    _require_serve_extra()
    from runtime.serve.access import check_exposure, resolve_api_key
    from runtime.serve.host import ModelHost
    from runtime.serve.loading import model_loader
    from runtime.serve.server import run_server

    show_warnings()
    options = ServeOptions(host=host, port=port, api_key=resolve_api_key(api_key, api_key_file),
                           max_queue=max_queue, allowed_hosts=allowed_hosts, insecure=insecure)
    check_exposure(options)
    if not options.loopback and not options.api_key:
        click.echo(f"rt: warning: listening on {host} without --api-key: anyone who can reach this "
                   "machine can use the model", err=True)
    folders = [p if env.is_index_url(p) else Path(p).expanduser().resolve() for p in indexes]
    if not folders and env.is_index_url(env.default_index()):
        folders = [env.default_index()]
    elif not folders and (env.default_index_dir() / DB_NAME).exists():
        folders = [env.default_index_dir().resolve()]
    load = load_options_from(params)
    remote = remote_from(params)
    loader, model_id = model_loader(params["model"], load, remote)
    embedder = remote.embedder if remote is not None and remote.embed_url else None
    model_host = ModelHost(loader, model_id=model_id, indexes=folders, load=load, make_embedder=embedder)
    _ = model_host.model  # load now: a missing or broken model is an error before listening
    where = f"http://{host}:{port}/v1"

    def ready() -> None:
        served = ", ".join(redact_credentials(str(f)) for f in folders) or "none"
        click.echo(f"rt: serving {model_id} at {where} (indexes: {served}); Ctrl-C stops", err=True)

    run_server(model_host, options, on_ready=ready)
    click.echo("rt: stopped; the model process has ended", err=True)


def _require_serve_extra() -> None:
    import importlib.util

    missing = [name for name in ("starlette", "uvicorn", "httpx") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"rt serve needs {', '.join(missing)}, which are not installed",
                          hint="pip install 'rt[serve]'")
