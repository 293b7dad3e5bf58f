"""Two ``rt convert`` runs into one output at once: one wins and the other fails clearly, or both
succeed; either way the output is a complete file, identical to a clean conversion, and no
temporary file stays behind (issue 8 §4, concurrency; finding 7).

Real processes running the real CLI; each writes its tensors slowly (a sleep per tensor) so that
the second run starts while the first is in the middle of its write.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from runtime.cli import cli
from runtime.fsutil import TMP_MARK
from runtime.models.gguf_file import inspect_gguf
from tests.convert import tiny_models

REPO = Path(__file__).resolve().parents[2]

SLOW_CONVERT = """
import sys, time
import gguf
pause = float(sys.argv[1])
original = gguf.GGUFWriter.write_tensor_data
def slow(self, *args, **kwargs):
    time.sleep(pause)
    return original(self, *args, **kwargs)
gguf.GGUFWriter.write_tensor_data = slow
sys.argv[1:] = sys.argv[2:]
from runtime.cli import main
main()
"""


def _convert(checkpoint: Path, out: Path, pause: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", SLOW_CONVERT, str(pause), "convert", "--from", str(checkpoint),
                             "--quant", "F16", "--out", str(out)],
                            cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(f"{TMP_MARK}*"))


def test_two_rt_convert_into_one_output_leave_one_complete_file(tmp_path: Path) -> None:
    tiny_llama = tiny_models.llama_bpe(tmp_path / "tiny-llama")
    out = tmp_path / "out" / "tiny.gguf"
    first = _convert(tiny_llama, out, 0.15)
    deadline = time.monotonic() + 120
    while not _temp_files(out.parent):  # the first run is writing
        assert first.poll() is None, first.communicate()[1]
        assert time.monotonic() < deadline, "the first conversion never started writing"
        time.sleep(0.02)
    second = _convert(tiny_llama, out, 0.0)
    results = [(run, *run.communicate(timeout=300)) for run in (first, second)]

    for run, _, err in results:  # each one succeeded or said clearly why not
        if run.returncode != 0:
            assert "internal error" not in err and "Traceback" not in err, err
            assert err.strip().splitlines()[-1].startswith("rt: "), err
    assert any(run.returncode == 0 for run, _, _ in results), [err for _, _, err in results]
    assert _temp_files(out.parent) == []
    assert [p.name for p in out.parent.glob("*.gguf")] == ["tiny.gguf"]

    clean = tmp_path / "clean" / "tiny.gguf"
    done = CliRunner().invoke(cli, ["convert", "--from", str(tiny_llama), "--quant", "F16", "--out", str(clean)])
    assert done.exit_code == 0, done.output
    assert out.read_bytes() == clean.read_bytes()
    assert inspect_gguf(out).architecture == "llama"
