"""``rt models``: list the registered models; ``rm`` and ``default`` manage them."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from runtime.cli.info import human_count
from runtime.fsutil import human_bytes
from runtime.models.registry import Registry


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List the models in the registry (* marks the default)."""
    if ctx.invoked_subcommand is not None:
        return
    registry = Registry()
    entries = registry.entries()
    default = registry.default_name
    if as_json:
        rows = [{**asdict(e), "path": str(registry.path_of(e)), "default": e.name == default} for e in entries]
        click.echo(json.dumps({"folder": str(registry.root), "default": default, "models": rows}, indent=2))
        return
    if not entries:
        click.echo(f"no models in {registry.root}; get one with `rt convert`", err=True)
        return
    table = [("", "NAME", "ARCH", "PARAMS", "QUANT", "SIZE", "CREATED")]
    for e in entries:
        table.append(("*" if e.name == default else "", e.name, e.architecture, human_count(e.parameters),
                      e.quantization, human_bytes(e.size), e.created[:16].replace("T", " ")))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


@models.command("rm")
@click.argument("name")
@click.option("--keep-file", is_flag=True, help="Unregister only; leave the GGUF file on disk.")
def rm(name: str, keep_file: bool) -> None:
    """Remove model NAME from the registry and delete its file."""
    registry = Registry()
    entry = registry.remove(name, delete_file=not keep_file)
    click.echo(f"removed {entry.name} ({human_bytes(entry.size)}"
               + (", file kept)" if keep_file else ")"))
    if registry.default_name:
        click.echo(f"default model: {registry.default_name}", err=True)


@models.command("default")
@click.argument("name")
def default(name: str) -> None:
    """Make NAME the model used when --model is not given."""
    Registry().set_default(name)
    click.echo(f"default model: {name}")
