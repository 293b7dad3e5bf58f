"""runtime.models.registry: the manifest (add, remove, default, corruption) and resolve_model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runtime.errors import ModelNotFoundError, RegistryError
from runtime.fsutil import TMP_MARK
from runtime.models.registry import ModelEntry, Registry, resolve_model, sha256_file


def _entry(registry: Registry, name: str, content: bytes = b"GGUF") -> ModelEntry:
    registry.root.mkdir(parents=True, exist_ok=True)
    (registry.root / f"{name}.gguf").write_bytes(content)
    return registry.add(ModelEntry(name=name, file=f"{name}.gguf", size=len(content)))


def test_registry_lives_under_rt_home_or_rt_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Registry().root == Path(os.environ["RT_HOME"]) / "models"
    monkeypatch.setenv("RT_MODELS", str(tmp_path / "elsewhere"))
    assert Registry().root == tmp_path / "elsewhere"


def test_add_replace_and_first_is_default() -> None:
    registry = Registry()
    assert registry.entries() == [] and registry.default_name is None
    _entry(registry, "a")
    _entry(registry, "b")
    assert registry.default_name == "a"
    registry.add(ModelEntry(name="a", file="a.gguf", quantization="Q8_0"))
    assert [(e.name, e.quantization) for e in registry.entries()] == [("b", ""), ("a", "Q8_0")]
    registry.add(ModelEntry(name="c", file="c.gguf"), make_default=True)
    assert registry.default_name == "c"


def test_remove_deletes_the_file_unless_shared() -> None:
    registry = Registry()
    _entry(registry, "a")
    registry.add(ModelEntry(name="alias", file="a.gguf"))
    registry.remove("alias")
    assert (registry.root / "a.gguf").exists()  # still used by "a"
    registry.remove("a")
    assert not (registry.root / "a.gguf").exists()
    assert registry.entries() == [] and registry.default_name is None
    with pytest.raises(ModelNotFoundError, match="no model named 'a'.*registered: none"):
        registry.remove("a")


def test_remove_never_deletes_outside_the_models_folder(tmp_path: Path) -> None:
    registry = Registry()
    outside = tmp_path / "mine.gguf"
    outside.write_bytes(b"GGUF")
    registry.add(ModelEntry(name="ext", file=str(outside)))
    registry.remove("ext")
    assert outside.exists()


def test_corrupt_manifest_is_a_clear_error() -> None:
    registry = Registry()
    registry.root.mkdir(parents=True)
    registry.manifest_path.write_text("{not json", encoding="utf-8")
    with pytest.raises(RegistryError, match=r"manifest .*manifest.json is unreadable.*fix or delete it"):
        registry.entries()
    registry.manifest_path.write_text('{"models": 3}', encoding="utf-8")
    with pytest.raises(RegistryError, match="no 'models' list"):
        registry.entries()


def test_manifest_writes_are_atomic() -> None:
    registry = Registry()
    _entry(registry, "a")
    _entry(registry, "b")
    data = json.loads(registry.manifest_path.read_text(encoding="utf-8"))
    assert [m["name"] for m in data["models"]] == ["a", "b"] and data["default"] == "a"
    assert not list(registry.root.glob(f"{TMP_MARK}*"))  # written under a temp name, then renamed


def test_sha256_file_streams(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"abc" * 1_000_000)
    assert sha256_file(path, chunk=4096) == sha256_file(path)


# --- resolve_model -------------------------------------------------------------------------
def test_resolve_nothing_registered_gives_the_embedded_model(smollm2_path: Path) -> None:
    assert resolve_model(None) == smollm2_path


def test_resolve_default_name_path_and_rt_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry()
    _entry(registry, "a")
    _entry(registry, "b")
    assert resolve_model(None) == registry.root / "a.gguf"
    assert resolve_model("b") == registry.root / "b.gguf"
    monkeypatch.setenv("RT_MODEL", "b")
    assert resolve_model(None) == registry.root / "b.gguf"
    loose = tmp_path / "loose.gguf"
    loose.write_bytes(b"GGUF")
    assert resolve_model(str(loose)) == loose


def test_resolve_errors_say_what_to_do(tmp_path: Path) -> None:
    registry = Registry()
    _entry(registry, "a")
    with pytest.raises(ModelNotFoundError, match=r"no model named 'zz'.*registered: a.*rt models"):
        resolve_model("zz")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "missing.gguf"))
    (registry.root / "a.gguf").unlink()
    with pytest.raises(ModelNotFoundError, match=r"registered but its file .* is missing.*rt models rm a"):
        resolve_model("a")
