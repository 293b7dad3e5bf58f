"""Two conversions into one folder, and conversions that are killed, with real processes.

A second run never deletes a live run's temporary files; the leftovers of dead runs are swept
by the next run into that folder, whatever its output name; a killed parent takes its
quantizer child with it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from convert.pipeline import convert_checkpoint
from runtime import fsutil
from tests.convert.test_interrupt import _CHILD, _temp_files
from tests.slow import slow_after_first

ROOT = Path(__file__).resolve().parents[2]

# The child that converts and parks itself after the first tensor, so its temporary file exists
# (and it owns it) while the test runs a second conversion: the interrupt tests' child.
_PARKED = _CHILD


def _wait_for(condition: object, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("quant", slow_after_first(["F16", "Q8_0"]))
def test_a_second_conversion_keeps_the_first_runs_temporary_file_until_that_run_is_dead(
        tiny_llama: Path, tmp_path: Path, quant: str) -> None:
    out_dir, ready = tmp_path / "models", tmp_path / "ready"
    final = out_dir / "tiny.gguf"
    first = subprocess.Popen([sys.executable, "-c", _PARKED, str(tiny_llama), str(final), str(ready), quant],
                             cwd=ROOT)
    try:
        _wait_for(lambda: ready.exists() or first.poll() is not None, "the first conversion never started writing")
        assert first.poll() is None, "the first conversion exited early"
        in_progress = _temp_files(out_dir)
        assert in_progress and all(f".rt-tmp-{first.pid}-" in p.name for p in in_progress)

        convert_checkpoint(tiny_llama, final, quant)  # the same --out, while the first run writes
        assert final.stat().st_size > 0
        assert _temp_files(out_dir) == in_progress  # the live run's files are untouched
    finally:
        first.kill()
        first.wait()

    # the first run is dead now: any later run into the folder sweeps its files
    convert_checkpoint(tiny_llama, out_dir / "other-name.gguf", "F16")
    assert _temp_files(out_dir) == []


def test_temporary_names_of_dead_and_unknown_owners_are_swept_live_ones_kept(tmp_path: Path) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        names = {
            "live": f"{fsutil.TMP_MARK}{live.pid}-0123abcd-a.gguf",
            "mine": fsutil.temp_path_for(tmp_path / "b.gguf").name,
            "dead": f"{fsutil.TMP_MARK}{dead.pid}-0123abcd-c.gguf",
            "older rt": f"{fsutil.TMP_MARK}0123abcd-d.gguf",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"partial")
        removed = {p.name for p in fsutil.sweep_temp_files(tmp_path)}
    finally:
        live.kill()
        live.wait()
    assert removed == {names["dead"], names["older rt"]}
    assert {p.name for p in _temp_files(tmp_path)} == {names["live"], names["mine"]}


# Quantizes in two steps with one thread; prints the quantizer's pid once it is under way and
# then waits for the test to kill it.
_QUANTIZING_PARENT = """
import sys, time
from pathlib import Path
import psutil
from convert.quantize import quantize_gguf

def on_progress(done, total):
    if done == 2:
        print(psutil.Process().children()[0].pid, flush=True)
        time.sleep(600)

quantize_gguf(Path(sys.argv[1]), Path(sys.argv[2]), "Q4_K_M", threads=1, on_progress=on_progress)
"""


@pytest.fixture(scope="module")
def smollm2_bf16_gguf(smollm2_hf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_checkpoint(smollm2_hf, tmp_path_factory.mktemp("bf16") / "smollm2-bf16.gguf", "BF16").path


@pytest.mark.parametrize("how", slow_after_first(["kill", "terminate"]))
def test_a_killed_parent_takes_its_quantizer_child_with_it(smollm2_bf16_gguf: Path, tmp_path: Path,
                                                           how: str) -> None:
    # Without the child's lifeline it quantizes SmolLM2's remaining 270 tensors to Q4_K_M
    # (tens of seconds on one thread) with nobody left to read the result.
    parent = subprocess.Popen([sys.executable, "-c", _QUANTIZING_PARENT, str(smollm2_bf16_gguf),
                               str(tmp_path / "out.gguf")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert not _gone(child)
    finally:
        getattr(parent, how)()
        parent.wait()
    killed = time.monotonic()
    _wait_for(lambda: _gone(child), "the quantizer outlived its parent by 5 s", seconds=5)
    assert time.monotonic() - killed < 5


def test_installing_a_model_sweeps_dead_runs_leftovers_in_the_registry(smollm2_path: Path) -> None:
    from click.testing import CliRunner

    from runtime.cli import cli
    from runtime.models.registry import Registry

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    root = Registry().root
    root.mkdir(parents=True, exist_ok=True)
    stale = root / f"{fsutil.TMP_MARK}{dead.pid}-0123abcd-killed-download.gguf"
    live = fsutil.temp_path_for(root / "in-progress.gguf")  # this process's: alive
    stale.write_bytes(b"partial")
    live.write_bytes(b"partial")
    result = CliRunner().invoke(cli, ["convert"])  # installs the embedded model into the registry
    assert result.exit_code == 0, result.output
    assert _temp_files(root) == [live]
