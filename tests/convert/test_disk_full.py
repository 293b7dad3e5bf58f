"""A disk that fills up during ``rt convert``: one rt error with the numbers, nothing left behind.

The disk is real: a 4 MB tmpfs (the ``small_disk`` fixture, skipped where mounting needs a root
this machine does not give). Each test lets rt's own free-space check pass, then fills the disk
the way another program would, so the write itself meets ENOSPC.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import convert.pipeline
from convert.pipeline import convert_checkpoint
from runtime import fsutil
from runtime.cli import cli
from runtime.diskfull import disk_full_errors, is_disk_full
from runtime.errors import InsufficientDiskError
from runtime.models import hub as hub_module
from runtime.models import link
from runtime.models.link import link_or_copy
from tests.convert.conftest import fill_disk
from tests.hubserver import HubServer

LEAVE = 16 * 1024  # free bytes left once the check passed: less than any tiny model needs


def _fill_after(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, disk: Path) -> None:
    """Make ``owner.name`` (a free-space check) fill ``disk`` right after it passes."""
    check: Callable[..., Any] = getattr(owner, name)

    def check_then_fill(*args: Any, **kwargs: Any) -> Any:
        result = check(*args, **kwargs)
        fill_disk(disk, LEAVE)
        return result

    monkeypatch.setattr(owner, name, check_then_fill)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "ballast")


@pytest.mark.parametrize(("quant", "direct"), [("F16", True), ("Q8_0", True), ("Q8_0", False)])
def test_conversion_on_a_full_disk(tiny_llama: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch,
                                   quant: str, direct: bool) -> None:
    _fill_after(monkeypatch, fsutil, "ensure_free_space", small_disk)
    final = small_disk / "tiny.gguf"
    with pytest.raises(InsufficientDiskError) as info:
        convert_checkpoint(tiny_llama, final, quant, direct=direct)
    message = str(info.value)
    assert f"the disk of {small_disk} filled up (No space left on device) while converting tiny-llama" in message
    assert " written, " in message and " free; the partial file was removed" in message
    assert info.value.available < 64 * 1024
    assert isinstance(info.value.__cause__, OSError)
    assert _leftovers(small_disk) == []


def test_quantizer_on_a_full_disk(tiny_llama: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The two-step path: the float intermediate fits, llama.cpp's quantizer then fills the disk."""
    _fill_after(monkeypatch, convert.pipeline, "write_gguf", small_disk)
    with pytest.raises(InsufficientDiskError, match=r"filled up \(No space left on device\) while quantizing to Q8_0: "
                                                    r".* written, .* free; the partial file was removed"):
        convert_checkpoint(tiny_llama, small_disk / "tiny.gguf", "Q8_0", direct=False)
    assert _leftovers(small_disk) == []


def test_rt_convert_on_a_full_disk_says_one_line(tiny_llama: Path, small_disk: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _fill_after(monkeypatch, convert.pipeline.fsutil, "ensure_free_space", small_disk)
    out = small_disk / "tiny.gguf"
    result = CliRunner().invoke(cli, ["convert", "--from", str(tiny_llama), "--quant", "F16", "--out", str(out)])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if "rt:" in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].strip().startswith(f"rt: error: the disk of {small_disk} filled up")
    assert "internal error" not in result.stderr
    assert "KB of about" in errors[0] and "choose another folder (--out)" in errors[0]
    assert _leftovers(small_disk) == []


def test_copy_into_a_full_disk(tmp_path: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "model.gguf"  # on another filesystem than the tmpfs: copied, not linked
    source.write_bytes(bytes(range(256)) * 1024)
    _fill_after(monkeypatch, link, "ensure_free_space", small_disk)
    with pytest.raises(InsufficientDiskError, match=r"filled up .* while copying model\.gguf: .* of about 262\.1 KB"):
        link_or_copy(source, small_disk / "model.gguf")
    assert _leftovers(small_disk) == []


def test_download_into_a_full_disk_keeps_the_partial(hub: HubServer, small_disk: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_repo("someone/Tiny-GGUF", {"tiny-Q8_0.gguf": b"GGUF" + bytes(600_000)})
    _fill_after(monkeypatch, hub_module, "ensure_free_space", small_disk)
    with pytest.raises(InsufficientDiskError) as info:
        hub_module.download_gguf("someone/Tiny-GGUF", "Q8_0", small_disk)
    message = str(info.value)
    assert "filled up (No space left on device) while downloading tiny-Q8_0.gguf from someone/Tiny-GGUF" in message
    assert "of about 600.0 KB written" in message and "was kept: rerun to resume" in message
    (partial,) = [p for p in small_disk.iterdir() if p.name.endswith(".part")]
    assert 0 < partial.stat().st_size < 600_004
    assert not (small_disk / "tiny-Q8_0.gguf").exists()


def test_other_os_errors_pass_through(tmp_path: Path) -> None:
    with pytest.raises(PermissionError):
        with disk_full_errors(tmp_path / "x", "writing x"):
            raise PermissionError(errno.EACCES, "Permission denied")
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError("19200 requested and 4816 written"))  # numpy's tofile
    assert not is_disk_full(OSError("something else"))
    assert not is_disk_full(InsufficientDiskError("already told", needed=1, available=0))


def test_checkpoint_download_into_a_full_disk(hub: HubServer, tiny_llama: Path, small_disk: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`rt convert --from OWNER/NAME`: huggingface_hub's snapshot download meets the full disk."""
    hub.add_repo("tester/Tiny-Llama", {p.name: p for p in tiny_llama.iterdir() if p.is_file()})
    monkeypatch.setenv("HF_HUB_CACHE", str(small_disk / "hub"))
    _fill_after(monkeypatch, hub_module, "ensure_free_space", small_disk)
    result = CliRunner().invoke(cli, ["convert", "--from", "tester/Tiny-Llama", "--quant", "F16"])
    assert result.exit_code == 1, result.output
    errors = [line.strip() for line in result.stderr.splitlines() if "rt:" in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"rt: error: the disk of {small_disk / 'hub'}/models--tester--Tiny-Llama filled up")
    assert "while downloading tester/Tiny-Llama" in errors[0] and "was kept: rerun to resume" in errors[0]
