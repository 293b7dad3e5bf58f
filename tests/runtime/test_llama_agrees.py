"""``rt info`` refuses exactly the files llama.cpp refuses to load (issue 21).

Each bad file is a patched copy of the real SmolLM2 GGUF. rt must refuse it with one line, and
the real llama.cpp, loading it in a child with rt's checks bypassed, must refuse it too: the
two agree. The untouched file loads in both, so the child is not refusing everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli
from runtime.errors import ModelFileError
from runtime.models.gguf_file import inspect_gguf
from tests.runtime.bad_gguf import LLAMA_REFUSES, llama_cpp_load
from tests.slow import slow_after_first


@pytest.fixture(scope="module")
def refused_files(bad_gguf_files: dict[str, Path]) -> dict[str, Path]:
    return {name: bad_gguf_files[name] for name in LLAMA_REFUSES}


def test_the_untouched_file_loads_in_both(smollm2_path: Path) -> None:
    inspect_gguf(smollm2_path)
    status, errors = llama_cpp_load(smollm2_path)
    assert status == 0, errors


@pytest.mark.parametrize("name", slow_after_first(LLAMA_REFUSES))  # a llama.cpp child each
def test_rt_info_and_llama_cpp_both_refuse(name: str, refused_files: dict[str, Path]) -> None:
    path = refused_files[name]
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 1 and result.stdout == "", result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("rt: error: ")
    for words in LLAMA_REFUSES[name][1]:
        assert words in line, line
    with pytest.raises(ModelFileError):
        inspect_gguf(path)

    status, errors = llama_cpp_load(path)
    assert status == 3, f"llama.cpp did not refuse {name} cleanly (status {status}): {errors}"
    assert "failed to load model" in errors or "error loading model" in errors, errors
