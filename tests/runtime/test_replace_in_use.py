"""The hub download and the registry's link put their file in place through fsutil's replace,
which waits while Windows says the target is in use (``held_files`` imitates the refusal)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime import fsutil
from runtime.errors import FileInUseError
from runtime.models.hub import download_gguf
from runtime.models.link import link_or_copy
from runtime.models.registry import sha256_file
from tests.hubserver import GGUF_FILE, GGUF_REPO, HubServer
from tests.windows import HeldFiles


@pytest.fixture(autouse=True)
def _short_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "IN_USE_RETRY_WAITS", (0.01, 0.02))


def test_a_link_onto_a_briefly_held_file_waits_and_still_links(tmp_path: Path, held_files: HeldFiles) -> None:
    source = tmp_path / "cache" / "model.gguf"
    source.parent.mkdir()
    source.write_bytes(b"the new model")
    target = tmp_path / "models" / "model.gguf"
    target.parent.mkdir()
    target.write_bytes(b"the old model")
    held_files.hold(target, refusals=1)  # a virus scanner looks at the old file, then lets go
    assert link_or_copy(source, target) == "link"  # not a second copy of a multi-GB file
    assert os.path.samefile(source, target)
    assert held_files.refused == [("replace", str(target))]
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.gguf"]


def test_a_link_onto_a_held_file_is_refused_and_leaves_the_old_file(tmp_path: Path, held_files: HeldFiles) -> None:
    source = tmp_path / "model-new.gguf"
    source.write_bytes(b"the new model")
    target = tmp_path / "models" / "model.gguf"
    target.parent.mkdir()
    target.write_bytes(b"the old model, mapped by a running rt serve")
    held_files.hold(target)
    with pytest.raises(FileInUseError, match="is in use by another program"):
        link_or_copy(source, target)
    assert target.read_bytes() == b"the old model, mapped by a running rt serve"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.gguf"]  # no temporary file left


def test_a_download_onto_a_briefly_held_model_waits_and_lands(
        gguf_repo: HubServer, smollm2_path: Path, tmp_path: Path, held_files: HeldFiles) -> None:
    final = tmp_path / "out" / GGUF_FILE
    final.parent.mkdir()
    final.write_bytes(b"an older download")
    held_files.hold(final, refusals=2)
    got = download_gguf(GGUF_REPO, "Q4_K_M", final.parent)
    assert got.path == final and sha256_file(final) == sha256_file(smollm2_path)
    assert [p.name for p in final.parent.iterdir()] == [GGUF_FILE]


def test_a_download_onto_a_held_model_keeps_the_download_beside_it(
        gguf_repo: HubServer, smollm2_path: Path, tmp_path: Path, held_files: HeldFiles) -> None:
    final = tmp_path / "out" / GGUF_FILE
    final.parent.mkdir()
    final.write_bytes(b"an older download, mapped by a running rt serve")
    held_files.hold(final)
    with pytest.raises(FileInUseError) as caught:
        download_gguf(GGUF_REPO, "Q4_K_M", final.parent)
    kept = final.with_name(final.stem + ".new.gguf")
    assert caught.value.kept == kept
    assert f"the new file is kept at {kept}" in str(caught.value)
    assert sha256_file(kept) == sha256_file(smollm2_path)  # the verified download is not lost
    assert final.read_bytes() == b"an older download, mapped by a running rt serve"
