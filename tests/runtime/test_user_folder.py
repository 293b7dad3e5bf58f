"""Nothing from the user's folder runs: rt's children start on rt's own import path.

Each test runs the installed ``rt`` script (as a user would) with the current directory set to
a folder holding a module that shadows one rt's children import and writes a marker file when
imported. With the old ``python -m runtime.process.child`` / ``python -m convert.quantize``
start, the current directory came first on the child's ``sys.path`` and every marker was
written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from runtime.process.launch import PROJECT_ROOT, child_environment, python_command
from tests.convert import tiny_models
from tests.slow import slow_after_first

ROOT = Path(__file__).resolve().parents[2]
RT_SCRIPT = Path(sysconfig.get_path("scripts")) / ("rt.exe" if sys.platform == "win32" else "rt")

pytestmark = pytest.mark.skipif(not RT_SCRIPT.exists(), reason="rt is not installed as a script")


def _plant(folder: Path, files: list[str], marker: Path) -> None:
    payload = f"open({str(marker)!r}, 'w').write(__name__)\n"
    for name in files:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(payload, encoding="utf-8")


def _rt(folder: Path, *args: str, pythonpath: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([str(RT_SCRIPT), *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)


def _ask(folder: Path, **kwargs: str) -> subprocess.CompletedProcess[str]:
    return _rt(folder, "ask", "--no-rag", "hi", "--max-tokens", "2", "--threads", "1", **kwargs)


@pytest.fixture()
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    folder, marker = tmp_path / "downloaded-project", tmp_path / "PWNED"
    folder.mkdir()
    return folder, marker


ASK_SHADOWS = {
    "runtime package": ["runtime/__init__.py", "runtime/worker_child.py", "runtime/process/__init__.py",
                        "runtime/llm/child.py"],
    "llama_cpp module": ["llama_cpp.py"],
    "llama_cpp package": ["llama_cpp/__init__.py", "llama_cpp/llama_cpp.py"],
    "site customization": ["sitecustomize.py", "usercustomize.py"],
}


@pytest.mark.parametrize("case", slow_after_first(sorted(ASK_SHADOWS)))
def test_rt_ask_in_a_folder_with_shadowing_modules_runs_none_of_them(hostile: tuple[Path, Path],
                                                                     case: str) -> None:
    folder, marker = hostile
    _plant(folder, ASK_SHADOWS[case], marker)
    result = _ask(folder)
    assert not marker.exists(), f"{marker.read_text()} from the current folder was imported"
    assert result.returncode == 0, result.stderr[-2000:]


CONVERT_SHADOWS = {
    "convert module": ["convert.py"],
    "convert package": ["convert/__init__.py", "convert/quantize.py"],
    "llama_cpp module": ["llama_cpp.py"],
}


# The two-step path (a float GGUF, then llama.cpp's quantizer in a child process), which rt
# convert takes when libggml lacks the direct quantizers; the parent itself starts on rt's path.
_TWO_STEP = (
    "import sys; sys.path[0] = sys.argv[1]; from pathlib import Path; "
    "from convert.pipeline import convert_checkpoint; "
    "convert_checkpoint(Path(sys.argv[2]), Path(sys.argv[3]), 'Q8_0', direct=False)"
)


@pytest.mark.parametrize("how", slow_after_first(["rt convert", "two-step"]))
@pytest.mark.parametrize("case", slow_after_first(sorted(CONVERT_SHADOWS)))
def test_quantizing_rt_convert_in_a_folder_with_shadowing_modules_runs_none_of_them(
        hostile: tuple[Path, Path], case: str, how: str) -> None:
    folder, marker = hostile
    tiny_checkpoint = tiny_models.llama_bpe(folder.parent / "tiny-llama")
    _plant(folder, CONVERT_SHADOWS[case], marker)
    out = folder.parent / "out" / "tiny.gguf"
    if how == "rt convert":
        result = _rt(folder, "convert", "--from", str(tiny_checkpoint), "--quant", "Q8_0", "--out", str(out))
    else:
        result = subprocess.run([sys.executable, "-c", _TWO_STEP, str(ROOT), str(tiny_checkpoint), str(out)],
                                cwd=folder, capture_output=True, text=True, timeout=300)
    assert not marker.exists(), f"{marker.read_text()} from the current folder was imported"
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.stat().st_size > 0


@pytest.mark.parametrize("pythonpath", slow_after_first([":", "::", ".", "relative:"]))
def test_empty_or_relative_pythonpath_entries_do_not_reach_the_model_process(
        hostile: tuple[Path, Path], pythonpath: str) -> None:
    # the parent resolves these against the current folder too (the user's own setting), but the
    # model process, which alone imports llama_cpp, never does
    folder, marker = hostile
    _plant(folder, ["llama_cpp.py", "relative/llama_cpp.py"], marker)
    result = _ask(folder, pythonpath=pythonpath.replace(":", os.pathsep))
    assert not marker.exists(), f"{marker.read_text()} from the current folder was imported"
    assert result.returncode == 0, result.stderr[-2000:]


def test_child_environment_keeps_absolute_pythonpath_entries_only(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    kept = str(tmp_path / "lib")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["", ".", "rel/lib", kept, ""]))
    entries = child_environment()["PYTHONPATH"].split(os.pathsep)
    assert entries[1:] == [kept]
    assert all(os.path.isabs(e) for e in entries)


_PLUGIN = """
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) { fputs("a ggml backend plugin", f); fclose(f); }
}
void *ggml_backend_init(void) { return 0; }
int ggml_backend_score(void) { return 1000; }
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("cc") is None, reason="builds a .so")
def test_ggml_backend_plugins_in_the_current_folder_are_not_loaded(hostile: tuple[Path, Path]) -> None:
    # ggml's ggml_backend_load_all() would search the current folder for libggml-*.so
    folder, marker = hostile
    source = folder.parent / "plugin.c"
    source.write_text(_PLUGIN.replace("MARKER", json.dumps(str(marker))), encoding="utf-8")
    library = folder / "libggml-cuda.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True, timeout=120)
    for name in ("libggml-cpu.so", "libggml-cpu-haswell.so", "libggml-vulkan.so", "libggml-blas.so"):
        shutil.copy(library, folder / name)
    result = _ask(folder)
    assert not marker.exists(), "a ggml backend plugin from the current folder was loaded"
    assert result.returncode == 0, result.stderr[-2000:]


def test_an_embedding_model_folder_cannot_run_its_own_code(hostile: tuple[Path, Path]) -> None:
    # an index names its embedding model; a downloaded index can name a folder of its own whose
    # modules.json points sentence-transformers at a module shipped beside it
    from runtime.errors import ModelLoadError
    from runtime.index.embedders.sentence_transformers import SentenceTransformerEmbedder

    folder, marker = hostile
    model = folder / "embedder"
    model.mkdir()
    (model / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "planted.Module"}]))
    (model / "planted.py").write_text(f"open({str(marker)!r}, 'w').write('planted')\nclass Module: pass\n")
    with pytest.raises(ModelLoadError, match="cannot load embedding model"):
        SentenceTransformerEmbedder(str(model))
    assert not marker.exists(), "the embedding model folder's own code ran"


@pytest.mark.parametrize("safe_path", [False, True])
def test_a_child_has_rts_folder_first_and_every_other_entry_of_a_plain_start(tmp_path: Path,
                                                                             safe_path: bool) -> None:
    # `python -m site` prints the child's sys.path; PYTHONSAFEPATH (3.11+) drops the '' of -c
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    if safe_path:
        env["PYTHONSAFEPATH"] = "1"
    plain = subprocess.run([sys.executable, "-I", "-c", "import sys; print(repr(sys.path))"],
                           capture_output=True, text=True, check=True).stdout
    child = subprocess.run(python_command("site"), cwd=tmp_path, env=env, capture_output=True, text=True,
                           check=True).stdout
    entries = [line.strip().strip(",").strip("'") for line in child.splitlines() if line.startswith("    '")]
    assert entries[0] == PROJECT_ROOT
    assert "" not in entries and str(tmp_path) not in entries
    for stdlib in eval(plain):  # the interpreter's own entries (the stdlib's zip first) all stay
        if os.path.exists(stdlib) or stdlib.endswith(".zip"):
            assert stdlib in entries
