"""Model names Windows cannot take: device names, names differing only in case, long paths."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from convert.install import install_embedded
from runtime.cli import cli
from runtime.errors import ConfigError, PathTooLongError, RegistryError
from runtime.models.registry import ModelEntry, Registry


def rt(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("name", ["CON", "con", "Prn", "aux", "NUL", "nul.q4", "COM1", "com9", "LPT1",
                                  "lpt9.model", "Aux.v2"])
def test_windows_device_names_are_refused_as_model_names(name: str) -> None:
    registry = Registry()
    with pytest.raises(ConfigError, match="is a device name on Windows"):
        registry.add(ModelEntry(name=name, file=f"{name}.gguf"))
    with pytest.raises(ConfigError, match="is a device name on Windows"):
        registry.check_new_name(name)
    assert registry.entries() == []


@pytest.mark.parametrize("name", ["console", "com10", "lpt0x", "nullable", "aux-model", "mycon"])
def test_names_that_only_start_like_a_device_are_fine(name: str) -> None:
    Registry().add(ModelEntry(name=name, file=f"{name}.gguf"))
    assert [e.name for e in Registry().entries()] == [name]


def test_rt_convert_refuses_a_device_name_before_writing_anything(smollm2_path: Path) -> None:
    result = rt("convert", "--name", "nul")
    assert result.exit_code != 0
    assert "'nul' cannot be a model name: NUL is a device name on Windows" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not Registry().root.exists() or list(Registry().root.glob("*.gguf")) == []


def test_a_name_differing_only_in_case_is_refused_before_its_file_is_written(smollm2_path: Path) -> None:
    install_embedded(name="Mistral")
    registry = Registry()
    before = (registry.root / "Mistral.gguf").stat()
    result = rt("convert", "--name", "mistral")
    assert result.exit_code != 0
    assert "'mistral' differs from the registered model 'Mistral' only in case" in result.stderr
    assert not (registry.root / "mistral.gguf").exists()
    assert (registry.root / "Mistral.gguf").stat().st_mtime_ns == before.st_mtime_ns
    with pytest.raises(RegistryError, match="only in case"):
        registry.add(ModelEntry(name="MISTRAL", file="MISTRAL.gguf"))
    assert [e.name for e in registry.entries()] == ["Mistral"]


def test_rm_of_the_other_case_deletes_nothing_and_points_at_the_name(smollm2_path: Path) -> None:
    install_embedded(name="Mistral")
    result = rt("models", "rm", "mistral")
    assert result.exit_code != 0
    assert "no model named 'mistral'" in result.stderr and "did you mean 'Mistral'?" in result.stderr
    assert (Registry().root / "Mistral.gguf").exists()
    assert [e.name for e in Registry().entries()] == ["Mistral"]


def test_rm_keeps_a_file_that_another_entry_holds_under_another_case() -> None:
    # A manifest written before names were checked: on a case-insensitive disk mistral.gguf
    # and Mistral.gguf are one file, so removing one entry must not delete the other's model.
    registry = Registry()
    registry.root.mkdir(parents=True)
    for name in ("Mistral", "mistral"):
        (registry.root / f"{name}.gguf").write_bytes(b"gguf")
    registry.manifest_path.write_text(json.dumps({"default": "Mistral", "models": [
        {"name": "Mistral", "file": "Mistral.gguf"}, {"name": "mistral", "file": "mistral.gguf"}]}))
    registry.remove("mistral")
    assert (registry.root / "mistral.gguf").exists() and (registry.root / "Mistral.gguf").exists()
    assert [e.name for e in registry.entries()] == ["Mistral"]


def test_a_models_folder_too_deep_for_windows_says_how_to_fix_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smollm2_path: Path) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    deep = tmp_path / ("x" * 100) / ("y" * 100) / "rt"
    monkeypatch.setenv("RT_HOME", str(deep))
    with pytest.raises(PathTooLongError) as caught:
        install_embedded()
    assert "too long for Windows" in str(caught.value)
    assert "LongPathsEnabled" in str(caught.value) and "RT_HOME" in str(caught.value)
    assert not deep.exists()
    with pytest.raises(PathTooLongError):
        Registry().add(ModelEntry(name="m", file="m.gguf"))
    assert not deep.exists()


def test_convert_out_too_deep_for_windows_is_refused_by_the_cli(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smollm2_path: Path) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    out = tmp_path / ("x" * 120) / ("y" * 120) / "model.gguf"
    result = rt("convert", "--out", str(out))
    assert result.exit_code != 0 and "too long for Windows" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.parent.exists()
