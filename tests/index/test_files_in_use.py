"""The index's files held open by a reader, as Windows refuses to replace or delete them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runtime import fsutil
from runtime.errors import FileInUseError, PathTooLongError
from runtime.index import Index
from runtime.index.vectors import VectorIndex, saved_generation_files
from tests.hashing_embedder import HashingEmbedder
from tests.windows import HeldFiles


@pytest.fixture(autouse=True)
def _short_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "IN_USE_RETRY_WAITS", (0.01, 0.02))


def test_saving_vectors_onto_a_held_file_is_a_clear_error_that_leaves_nothing_behind(
        tmp_path: Path, held_files: HeldFiles) -> None:
    path = tmp_path / "vectors-3.faiss"
    path.write_bytes(b"the old cache, read by a running rt serve")
    held_files.hold(path)
    with pytest.raises(FileInUseError) as caught:
        VectorIndex.empty(16, "flat").save(path)
    assert f"{path} is in use by another program" in str(caught.value)
    assert "the documents are committed" in str(caught.value)
    assert path.read_bytes() == b"the old cache, read by a running rt serve"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors-3.faiss"]  # no temporary, no .new copy


def test_an_update_goes_on_while_a_reader_holds_the_old_vectors_file(tmp_path: Path, held_files: HeldFiles) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Otters hold hands while they sleep.\n", encoding="utf-8")
    folder = tmp_path / "index"
    embedder = HashingEmbedder()
    with Index.open(folder, create=True, embedder=embedder) as index:
        index.add([docs])
    (old,) = saved_generation_files(folder).values()
    held_files.hold(old)  # `rt serve` searching the index has it open
    (docs / "b.txt").write_text("Penguins propose with pebbles.\n", encoding="utf-8")
    with Index.open(folder, embedder=embedder) as index:
        index.add([docs])
        assert "pebbles" in index.search("penguins pebbles", 1)[0].text
    assert old in saved_generation_files(folder).values()  # still held: left for a later run
    held_files.release(old)
    (docs / "c.txt").write_text("Crows remember faces.\n", encoding="utf-8")
    with Index.open(folder, embedder=embedder) as index:
        index.add([docs])
    assert old not in saved_generation_files(folder).values()
    assert len(saved_generation_files(folder)) == 1


def test_an_index_folder_too_deep_for_windows_is_refused_before_anything_is_created(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    folder = tmp_path / ("i" * 110) / ("j" * 110)
    with pytest.raises(PathTooLongError) as caught:
        Index.open(folder, create=True, embedder=HashingEmbedder())
    assert "too long for Windows" in str(caught.value) and "LongPathsEnabled" in str(caught.value)
    assert not folder.exists()
