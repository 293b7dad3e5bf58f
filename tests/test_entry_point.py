"""The installed ``rt`` script never imports code from the working folder (issue 21).

``PYTHONPATH=:`` or ``PYTHONPATH=.`` puts the current folder on ``sys.path`` ahead of rt's
install location; a document folder holding ``runtime/`` or ``convert.py`` would otherwise be
imported as rt itself. These tests run the real console script made by ``pip install -e``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from _rt_bootstrap import clean_sys_path

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "from pathlib import Path\nPath(__file__).resolve().parents[{up}].joinpath('MARKER').write_text('ran')\n"


def _rt_script() -> Path:
    script = Path(sys.executable).with_name("rt.exe" if os.name == "nt" else "rt")
    if not script.exists():
        pytest.skip(f"no rt console script beside {sys.executable}; install rt with pip install -e .")
    return script


def _run_rt(cwd: Path, pythonpath: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run([str(_rt_script()), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("pythonpath", [":", ".", ""])
@pytest.mark.parametrize("layout", ["runtime/__init__.py", "convert.py", "convert/__init__.py"])
def test_rt_ignores_code_in_the_working_folder(tmp_path: Path, layout: str, pythonpath: str) -> None:
    folder = tmp_path / "documents"
    hostile = folder / layout
    hostile.parent.mkdir(parents=True, exist_ok=True)
    hostile.write_text(HOSTILE.format(up=len(Path(layout).parts) - 1), encoding="utf-8")
    env_path = pythonpath or str(folder)  # "": the folder named by its absolute path

    helped = _run_rt(folder, env_path, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "Usage: rt" in helped.stdout
    # rt convert's module imports the convert package; rt models reads the (empty) registry.
    convert_help = _run_rt(folder, env_path, "convert", "--help")
    assert convert_help.returncode == 0, convert_help.stderr
    assert "--quant" in convert_help.stdout
    listed = _run_rt(folder, env_path, "models")
    assert listed.returncode == 0, listed.stderr
    assert "no models" in listed.stdout + listed.stderr
    assert not (folder / "MARKER").exists(), f"rt imported {layout} from the working folder"


def test_rt_runs_from_its_own_checkout() -> None:
    """Developing rt (cwd is the checkout rt is installed from) keeps importing the checkout."""
    result = _run_rt(ROOT, ":", "convert", "--help")
    assert result.returncode == 0, result.stderr
    assert "--quant" in result.stdout


def test_clean_sys_path_drops_only_the_working_folder(tmp_path: Path) -> None:
    cwd, installed, other = tmp_path / "cwd", tmp_path / "site", tmp_path / "other"
    for folder in (cwd, installed, other):
        folder.mkdir()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        path = ["", ".", str(cwd), str(cwd) + os.sep, str(other), str(installed), str(tmp_path / "missing")]
        assert clean_sys_path(path, str(cwd), str(installed)) == [str(other), str(installed),
                                                                    str(tmp_path / "missing")]
        # rt's own checkout as the working folder: nothing is dropped
        assert clean_sys_path(path, str(cwd), str(cwd)) == path
    finally:
        os.chdir(here)
