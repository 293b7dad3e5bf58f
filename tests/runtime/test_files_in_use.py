"""Replacing files another program holds open, as Windows refuses it (imitated by ``held_files``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runtime import fsutil
from runtime.errors import FileInUseError, PathTooLongError, RegistryError
from runtime.fsutil import TMP_MARK, atomic_path, atomic_write_bytes
from runtime.models.registry import ModelEntry, Registry
from tests.windows import HeldFiles


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((TMP_MARK, fsutil.PROBE_MARK)))


def test_a_target_held_when_the_write_ends_keeps_the_finished_file_and_says_where(
        tmp_path: Path, held_files: HeldFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "IN_USE_RETRY_WAITS", (0.01, 0.01))
    final = tmp_path / "model.gguf"
    final.write_bytes(b"old model")
    with pytest.raises(FileInUseError) as caught:
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"five minutes of conversion")
            held_files.hold(final)  # `rt serve` starts and maps the old file meanwhile
    kept = tmp_path / "model.new.gguf"
    assert caught.value.kept == kept and caught.value.path == final
    assert kept.read_bytes() == b"five minutes of conversion"
    assert final.read_bytes() == b"old model"
    message = str(caught.value)
    assert "in use by another program (a running rt serve or rt chat?)" in message
    assert f"the new file is kept at {kept}" in message and f"move {kept} to {final}" in message
    assert isinstance(caught.value, PermissionError) and "\n" not in message
    assert _leftovers(tmp_path) == []


def test_a_target_held_before_the_write_is_refused_before_any_work(
        tmp_path: Path, held_files: HeldFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "IN_USE_RETRY_WAITS", (0.01, 0.01))
    final = tmp_path / "model.gguf"
    final.write_bytes(b"old model")
    held_files.hold(final)
    with pytest.raises(FileInUseError, match="nothing was written") as caught:
        with atomic_path(final):
            pytest.fail("the work started although the target cannot be replaced")
    assert caught.value.kept is None
    assert final.read_bytes() == b"old model" and _leftovers(tmp_path) == []
    assert ("rename", str(final)) in held_files.refused  # the probe asked, as Windows would answer


def test_a_brief_hold_is_outlasted_by_the_retries(tmp_path: Path, held_files: HeldFiles) -> None:
    final = tmp_path / "manifest.json"
    final.write_bytes(b"old")
    held_files.hold(final, refusals=3)  # an antivirus scan of the file, then it lets go
    atomic_write_bytes(final, b"new")
    assert final.read_bytes() == b"new" and _leftovers(tmp_path) == []
    assert len(held_files.refused) == 3


def test_the_default_retries_last_about_two_seconds() -> None:
    assert 1.5 <= sum(fsutil.IN_USE_RETRY_WAITS) <= 3.0


def test_a_real_permission_denial_is_not_retried_or_called_in_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def denied(src: object, dst: object) -> None:
        calls.append(dst)
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(fsutil.os, "replace", denied)
    with pytest.raises(PermissionError) as caught:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
    assert not isinstance(caught.value, FileInUseError) and len(calls) == 1
    assert _leftovers(tmp_path) == []


def test_without_windows_rules_nothing_is_probed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "REPLACE_REFUSED_WHILE_OPEN", False)
    renames = []
    monkeypatch.setattr(fsutil.os, "rename", lambda *a: renames.append(a))
    final = tmp_path / "model.gguf"
    final.write_bytes(b"old")
    atomic_write_bytes(final, b"new")
    assert final.read_bytes() == b"new" and renames == []


# --- the model registry's manifest ----------------------------------------------------------
def test_manifest_reads_that_race_a_replace_retry(held_files: HeldFiles) -> None:
    registry = Registry()
    registry.add(ModelEntry(name="m", file="m.gguf"))
    held_files.hold(registry.manifest_path, refusals=2, reads=True)  # mid-replace by another rt
    assert [e.name for e in registry.entries()] == ["m"]
    assert [op for op, _ in held_files.refused] == ["open", "open"]


def test_a_manifest_held_for_long_is_a_clear_error(
        held_files: HeldFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "IN_USE_RETRY_WAITS", (0.01, 0.01))
    registry = Registry()
    registry.add(ModelEntry(name="m", file="m.gguf"))
    held_files.hold(registry.manifest_path)
    with pytest.raises(FileInUseError, match="manifest.json is in use by another program"):
        registry.add(ModelEntry(name="n", file="n.gguf"))
    held_files.release(registry.manifest_path)
    assert [e.name for e in registry.entries()] == ["m"]
    assert not (registry.root / "manifest.new.json").exists()  # a stale manifest copy helps nobody


def test_removing_a_model_whose_file_is_held_keeps_it_registered(
        held_files: HeldFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "IN_USE_RETRY_WAITS", (0.01,))
    registry = Registry()
    registry.root.mkdir(parents=True)
    (registry.root / "m.gguf").write_bytes(b"gguf")
    registry.add(ModelEntry(name="m", file="m.gguf"))
    held_files.hold(registry.root / "m.gguf")
    with pytest.raises(RegistryError, match="'m' stays registered"):
        registry.remove("m")
    assert [e.name for e in registry.entries()] == ["m"]


# --- paths too long for Windows ---------------------------------------------------------------
def test_a_path_over_windows_max_path_is_refused_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    deep = tmp_path / ("d" * 120) / ("e" * 100)
    with pytest.raises(PathTooLongError) as caught:
        with atomic_path(deep / "model.gguf"):
            pytest.fail("the work started")
    message = str(caught.value)
    assert "too long for Windows" in message and "LongPathsEnabled" in message and "RT_HOME" in message
    assert not deep.exists()


def test_long_paths_are_fine_off_windows(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120) / ("e" * 100)
    atomic_write_bytes(deep / "model.gguf", b"x")
    assert (deep / "model.gguf").read_bytes() == b"x"


def test_a_small_file_that_cannot_replace_a_held_one_is_not_kept(
        tmp_path: Path, held_files: HeldFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "IN_USE_RETRY_WAITS", (0.01,))
    final = tmp_path / "row-cost.json"
    final.write_bytes(b"old")
    real_check = fsutil.check_replaceable

    def free_when_checked_then_held(path: Path) -> None:
        real_check(path)
        held_files.hold(path)  # a reader opens it while the new one is written

    monkeypatch.setattr(fsutil, "check_replaceable", free_when_checked_then_held)
    with pytest.raises(FileInUseError, match="it was not replaced"):
        atomic_write_bytes(final, b"new")
    assert final.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["row-cost.json"]
