"""``rt models``, ``rt models rm``, ``rt models default`` and ``rt ask --model NAME``."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result

from runtime.cli import cli
from runtime.models.registry import ModelEntry, Registry


def rt(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _install(name: str) -> None:
    result = rt("convert", "--name", name)
    assert result.exit_code == 0, result.output


def test_models_on_an_empty_registry_says_how_to_get_one() -> None:
    result = rt("models")
    assert result.exit_code == 0 and result.stdout == ""
    assert "rt convert" in result.stderr


def test_models_table_marks_the_default() -> None:
    _install("first")
    _install("second")
    lines = rt("models").stdout.splitlines()
    assert lines[0].split() == ["NAME", "ARCH", "PARAMS", "QUANT", "SIZE", "CREATED"]
    assert lines[1].split()[:6] == ["*", "first", "llama", "135M", "Q4_1", "98.4"]
    assert lines[2].split()[:2] == ["second", "llama"]


def test_models_json() -> None:
    _install("tiny")
    data = json.loads(rt("models", "--json").stdout)
    assert data["default"] == "tiny"
    (model,) = data["models"]
    assert model["name"] == "tiny" and model["default"] and model["parameters"] > 100e6
    assert model["path"].endswith("tiny.gguf") and len(model["sha256"]) == 64


def test_models_default_switches_and_unknown_names_fail() -> None:
    _install("first")
    _install("second")
    assert rt("models", "default", "second").exit_code == 0
    assert Registry().default_name == "second"
    result = rt("models", "default", "third")
    assert result.exit_code == 1
    assert "no model named 'third'" in result.stderr and "registered: first, second" in result.stderr


def test_models_rm_deletes_the_file_and_moves_the_default() -> None:
    _install("first")
    _install("second")
    path = Registry().root / "first.gguf"
    result = rt("models", "rm", "first")
    assert result.exit_code == 0 and "removed first" in result.stdout
    assert not path.exists()
    assert Registry().default_name == "second"
    assert rt("models", "rm", "first").exit_code == 1


def test_models_rm_of_a_file_that_cannot_be_deleted_fails_and_keeps_the_entry() -> None:
    registry = Registry()
    registry.add(ModelEntry(name="busy", file="busy.gguf"))
    busy = registry.root / "busy.gguf"
    busy.mkdir()  # os.remove fails on it, as on Windows for a model another process has mapped
    (busy / "x").write_bytes(b"x")
    result = rt("models", "rm", "busy")
    assert result.exit_code == 1
    assert "rt: error: cannot delete" in result.stderr and "'busy' stays registered" in result.stderr
    assert "--keep-file" in result.stderr and "internal error" not in result.stderr
    assert [e.name for e in Registry().entries()] == ["busy"]


def test_models_rm_keep_file() -> None:
    _install("kept")
    assert rt("models", "rm", "kept", "--keep-file").exit_code == 0
    assert (Registry().root / "kept.gguf").exists() and Registry().entries() == []


def test_ask_model_name_resolves_through_the_registry() -> None:
    _install("tiny")
    result = rt("ask", "--no-rag", "--model", "tiny", "--max-tokens", "4", "--json", "Say hi")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model_path"] == str(Registry().root / "tiny.gguf")


def test_ask_unknown_model_name_lists_the_registered_ones() -> None:
    _install("tiny")
    result = rt("ask", "--no-rag", "--model", "nosuch", "Say hi")
    assert result.exit_code == 1
    assert "no model named 'nosuch'" in result.stderr and "registered: tiny" in result.stderr
