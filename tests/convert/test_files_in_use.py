"""``rt convert`` onto a GGUF another program holds open, as Windows refuses it (``held_files``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from convert import pipeline
from convert.install import install_checkpoint
from runtime import fsutil
from runtime.cli import cli
from runtime.errors import FileInUseError
from runtime.models.gguf_file import inspect_gguf
from runtime.models.registry import Registry
from tests.windows import HeldFiles


@pytest.fixture(autouse=True)
def _short_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "IN_USE_RETRY_WAITS", (0.01, 0.02))


def test_a_conversion_onto_a_model_held_when_it_ends_keeps_the_result(
        tiny_llama: Path, tmp_path: Path, held_files: HeldFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "models" / "tiny.gguf"
    out.parent.mkdir()
    out.write_bytes(b"the old model, mapped by a running rt serve")
    real_write = pipeline.write_gguf

    def write_then_serve_starts(path: Path, *args: object, **kwargs: object) -> None:
        real_write(path, *args, **kwargs)  # type: ignore[arg-type]
        held_files.hold(out)  # `rt serve` loads the old file while the conversion finishes

    monkeypatch.setattr(pipeline, "write_gguf", write_then_serve_starts)
    with pytest.raises(FileInUseError) as caught:
        pipeline.convert_checkpoint(tiny_llama, out, "F16")
    kept = out.with_name("tiny.new.gguf")
    assert caught.value.kept == kept
    assert f"the new file is kept at {kept}; close that program and move {kept} to {out}" in str(caught.value)
    assert inspect_gguf(kept).architecture == "llama"  # the finished conversion, whole
    assert out.read_bytes() == b"the old model, mapped by a running rt serve"
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.gguf", "tiny.new.gguf"]
    assert fsutil.sweep_temp_files(out.parent) == [] and kept.exists()  # a later run never sweeps it


def test_a_conversion_onto_a_held_model_is_refused_before_the_work(
        tiny_llama: Path, held_files: HeldFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    install_checkpoint(tiny_llama, "F16", name="tiny")
    target = Registry().root / "tiny.gguf"
    before = target.read_bytes()
    held_files.hold(target)
    monkeypatch.setattr(pipeline, "write_gguf", lambda *a, **k: pytest.fail("the conversion started"))
    result = CliRunner().invoke(cli, ["convert", "--from", str(tiny_llama), "--quant", "F16", "--name", "tiny"])
    assert result.exit_code != 0
    assert result.stderr.startswith("rt: error: ")
    assert f"{target} is in use by another program (a running rt serve or rt chat?); nothing was written" \
        in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert target.read_bytes() == before and not target.with_name("tiny.new.gguf").exists()


def test_a_conversion_waits_out_a_brief_hold(tiny_llama: Path, tmp_path: Path, held_files: HeldFiles) -> None:
    out = tmp_path / "tiny.gguf"
    out.write_bytes(b"old")
    held_files.hold(out, refusals=2)  # a virus scanner looks at the old file, then lets go
    result = pipeline.convert_checkpoint(tiny_llama, out, "F16")
    assert result.path == out and inspect_gguf(out).architecture == "llama"
    assert not out.with_name("tiny.new.gguf").exists()
