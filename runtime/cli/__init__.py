"""rt's command line: a thin Click skin over the library.

Commands live one per module and are imported only when run (``rt --help`` and ``rt info``
must not pay for torch). Errors are rendered here, once: one line on stderr, a non-zero exit,
and a hint that ``RT_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import errno
import faulthandler
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
        except MemoryError:
            render_error(
                "out of memory in rt itself; try a smaller --ctx, --kv-type q8_0 or a smaller model"
            )
            ctx.exit(1)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: never die silently
            if isinstance(exc, OSError) and reader_gone(exc):
                silence_stdout()  # the reader went away (rt ... | head, | more); not an error
                ctx.exit(0)
            if env.debug():
                traceback.print_exc()
            render_error(f"internal error: {type(exc).__name__}: {exc}")
            ctx.exit(1)


def reader_gone(exc: OSError) -> bool:
    """Whether ``exc`` is what writing to a pipe whose reader has closed it raises.

    Linux and macOS raise BrokenPipeError (EPIPE). Windows raises OSError EINVAL ("Invalid
    argument") when writing or flushing into a closed pipe, so there EINVAL counts too.
    """
    if isinstance(exc, BrokenPipeError):
        return True
    return on_windows() and exc.errno == errno.EINVAL


def on_windows() -> bool:
    """The platform fact :func:`reader_gone` depends on, in one place tests can fake."""
    return sys.platform == "win32"


def silence_stdout() -> None:
    """Point stdout at the null device, so that the flush at exit does not fail a second time
    (Python would print "Exception ignored ... BrokenPipeError" and exit with status 120)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real descriptor (an embedding application's stream)
        pass
    sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives until exit


def utf8_output() -> None:
    """Write UTF-8 to pipes and files, and never fail on a character a console cannot show.

    Python on Windows encodes redirected or piped output in the ANSI code page (cp1252 in the
    West): an answer, a file name or ``--json`` with ``→``, CJK or an emoji raised
    UnicodeEncodeError halfway through. Whatever reads rt's output from a pipe or file gets
    UTF-8; a console gets its own encoding with unencodable characters replaced.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:  # replaced by something that is not a TextIOWrapper
            continue
        try:
            if stream.isatty():
                reconfigure(errors="replace")
            else:
                reconfigure(encoding="utf-8", errors="replace")
        except (OSError, ValueError):  # closed, or already written to in another encoding
            pass


@click.group(cls=RtGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rt", prog_name="rt")
def cli() -> None:
    """rt: ask questions about your own documents with a local model, on the CPU."""


def main() -> None:
    """Console-script entry point."""
    # A native crash in rt's own process (a C extension, a ctypes call) prints Python's stack
    # instead of ending with no message; the model's child process enables its own.
    try:
        faulthandler.enable()
    except (AttributeError, RuntimeError, ValueError, OSError):  # no stderr descriptor (pythonw, a captured stream)
        pass
    utf8_output()
    try:
        cli(prog_name="rt")
    except SystemExit as exc:
        _leave(exc.code)
    except OSError as exc:  # writing --help or a usage error into a closed pipe
        if not reader_gone(exc):
            render_error(f"internal error: {type(exc).__name__}: {exc}")
            _leave(1)
        silence_stdout()
        _leave(0)
    _leave(0)


def _leave(code: int | str | None) -> None:
    """Exit with ``code``; skip the interpreter's teardown once torch is loaded.

    Tearing down torch costs about 1.3 s here (measured: 5.56 s vs 4.44 s for a process that
    loads MiniLM and embeds one text), on every `rt ask` and `rt search`. Nothing rt keeps relies
    on atexit: commands close their index, model process and files (written under a temporary
    name, then renamed) before they return. So once torch is in, flush and leave directly.
    """
    try:
        sys.stdout.flush()
    except OSError as exc:  # the reader closed the pipe after the last write (rt ... | head)
        if not reader_gone(exc):  # a full disk under `rt ... > out.txt`
            render_error(f"could not write the output: {exc}")
            code = code or 1
        silence_stdout()
    except ValueError:  # already closed
        pass
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
