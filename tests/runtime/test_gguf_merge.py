"""runtime.models.gguf_merge on a failing write: nothing left open, nothing left on disk."""

from __future__ import annotations

import errno
from pathlib import Path

import gguf
import pytest

from runtime.models.gguf_merge import merge_split_gguf


@pytest.mark.slow
def test_failed_merge_closes_its_output(
    smollm2_parts: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk mid-merge: the writer's file is closed (Windows could not delete it open)."""
    writers: list[gguf.GGUFWriter] = []
    real_init = gguf.GGUFWriter.__init__

    def recording_init(self: gguf.GGUFWriter, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        writers.append(self)

    def disk_full(self: gguf.GGUFWriter, tensor: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gguf.GGUFWriter, "__init__", recording_init)
    monkeypatch.setattr(gguf.GGUFWriter, "write_tensor_data", disk_full)
    out = tmp_path / "merged" / "model.gguf"
    with pytest.raises(OSError, match="No space left"):
        merge_split_gguf(smollm2_parts, out)
    (writer,) = writers
    assert writer.fout is None  # closed, though the traceback still holds the writer
    assert list(out.parent.iterdir()) == []
