"""rt's command line: a thin Click skin over the library.

Commands live one per module and are imported only when run (``rt --help`` and ``rt info``
must not pay for torch). Errors are rendered here, once: one line on stderr, a non-zero exit,
and a hint that ``RT_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback

import click

from runtime import env
from runtime.errors import RtError

# name -> "module:attribute"; a module that does not exist yet is simply not listed.
COMMANDS: dict[str, str] = {
    "ask": "runtime.cli.ask:ask",
    "chat": "runtime.cli.chat:chat",
    "info": "runtime.cli.info:info",
    "models": "runtime.cli.models:models",
    "convert": "runtime.cli.convert:convert",
    "eval": "runtime.cli.eval:eval_command",
    "index": "runtime.cli.index:index",
    "search": "runtime.cli.search:search",
    "serve": "runtime.cli.serve:serve",
}


def render_error(message: str) -> None:
    """Print the error as one line on stderr, ending with the debug hint unless RT_DEBUG is set."""
    hint = "" if env.debug() else " (RT_DEBUG=1 shows the traceback)"
    click.echo(f"rt: error: {message}{hint}", err=True)


class RtGroup(click.Group):
    """Lazy command loading and the one place where errors become messages."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        return getattr(module, attr)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except RtError as exc:
            if env.debug():
                traceback.print_exc()
            render_error(str(exc))
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("rt: interrupted; nothing was left half-written", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            sys.stderr.close()  # the reader went away (rt ... | head); not an error
            ctx.exit(0)
        except MemoryError:
            render_error(
                "out of memory in rt itself; try a smaller --ctx, --kv-type q8_0 or a smaller model"
            )
            ctx.exit(1)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: never die silently
            if env.debug():
                traceback.print_exc()
            render_error(f"internal error: {type(exc).__name__}: {exc}")
            ctx.exit(1)


@click.group(cls=RtGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rt", prog_name="rt")
def cli() -> None:
    """rt: ask questions about your own documents with a local model, on the CPU."""


def main() -> None:
    """Console-script entry point."""
    try:
        cli(prog_name="rt")
    except SystemExit as exc:
        _leave(exc.code)
    _leave(0)


def _leave(code: int | str | None) -> None:
    """Exit with ``code``; skip the interpreter's teardown once torch is loaded.

    Tearing down torch costs about 1.3 s here (measured: 5.56 s vs 4.44 s for a process that
    loads MiniLM and embeds one text), on every `rt ask` and `rt search`. Nothing rt keeps relies
    on atexit: commands close their index, model process and files (written under a temporary
    name, then renamed) before they return. So once torch is in, flush and leave directly.
    """
    if "torch" not in sys.modules:
        sys.exit(code)
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (rt ... | head) has nothing left to flush
            pass
    os._exit(code or 0)
