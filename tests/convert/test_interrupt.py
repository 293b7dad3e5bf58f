"""A killed or interrupted conversion leaves nothing under the final name; a rerun cleans up."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import convert.pipeline
from convert.pipeline import convert_checkpoint
from convert.quantize import quantize_gguf
from runtime import fsutil
from runtime.errors import ConvertError
from tests.slow import slow_after_first

ROOT = Path(__file__).resolve().parents[2]

# Converts in a child process that parks itself after writing the first tensor, so the test
# can kill it at a known point in the middle of the write.
_CHILD = """
import sys, time
from pathlib import Path
import gguf
from convert.pipeline import convert_checkpoint

original = gguf.GGUFWriter.write_tensor_data
def parked(self, tensor, *args, **kwargs):
    original(self, tensor, *args, **kwargs)
    self.flush()
    Path(sys.argv[3]).touch()
    time.sleep(600)
gguf.GGUFWriter.write_tensor_data = parked
convert_checkpoint(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[4])
"""


def _temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{fsutil.TMP_MARK}*"))


@pytest.mark.parametrize("quant", slow_after_first(["F16", "Q8_0"]))
def test_killed_conversion_leaves_no_final_file(tiny_llama: Path, tmp_path: Path, quant: str) -> None:
    out_dir, ready = tmp_path / "models", tmp_path / "ready"
    final = out_dir / "tiny.gguf"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tiny_llama), str(final), str(ready), quant],
                             cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert child.poll() is None, "the converting child exited early"
            assert time.monotonic() < deadline, "the converting child never started writing"
            time.sleep(0.05)
        leftovers = _temp_files(out_dir)
        assert leftovers and all(p.stat().st_size > 0 for p in leftovers)
    finally:
        child.kill()
        child.wait()
    assert not final.exists()
    assert _temp_files(out_dir) == leftovers  # a kill cannot clean up after itself ...

    result = convert_checkpoint(tiny_llama, final, quant)  # ... the next run does
    assert result.path == final and final.stat().st_size > 0
    assert _temp_files(out_dir) == []


def test_ctrl_c_during_quantization_cleans_up(tiny_llama: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(src: Path, dst: Path, quant: str, **kwargs: object) -> None:
        assert src.is_file()  # the intermediate exists while quantizing
        dst.write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(convert.pipeline, "quantize_gguf", interrupted)
    final = tmp_path / "models" / "tiny.gguf"
    with pytest.raises(KeyboardInterrupt):
        convert_checkpoint(tiny_llama, final, "Q4_K_M", direct=False)
    assert list(final.parent.iterdir()) == []


def test_existing_file_survives_a_failed_conversion(tiny_llama: Path, tmp_path: Path) -> None:
    final = tmp_path / "tiny.gguf"
    final.write_bytes(b"the previous good model")
    (tiny_llama / "config.json").write_text('{"architectures": ["Nope"]}')
    with pytest.raises(ConvertError):
        convert_checkpoint(tiny_llama, final, "F16")
    assert final.read_bytes() == b"the previous good model"


def test_quantizer_failure_is_reported(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(ConvertError, match="could not quantize bogus.gguf to Q8_0"):
        quantize_gguf(bogus, tmp_path / "out.gguf", "Q8_0")


@pytest.mark.slow
def test_quantizer_killed_mid_write(smollm2_hf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quantizer process dies (as under the OOM killer): a clear error, no files left.

    SmolLM2's 272 tensors take the quantizer about two seconds, so killing it at the third
    cannot race with its finishing (a tiny model would be done before the kill lands).
    """
    import psutil

    def kill_children(done: int, total: int) -> None:
        if done >= 3:
            for child in psutil.Process().children():
                child.kill()

    def quantize_and_die(src: Path, dst: Path, quant: str, **kwargs: object) -> None:
        quantize_gguf(src, dst, quant, on_progress=kill_children)

    monkeypatch.setattr(convert.pipeline, "quantize_gguf", quantize_and_die)
    final = tmp_path / "models" / "smollm2.gguf"
    with pytest.raises(ConvertError, match=r"quantizer (was killed by signal|exited with code) .* while writing Q8_0"):
        convert_checkpoint(smollm2_hf, final, "Q8_0", direct=False)
    assert list(final.parent.iterdir()) == []
