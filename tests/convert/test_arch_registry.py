"""Architectures load by name: convert.arch's name -> module map finds each converter, imports
only the module asked for, and an unknown architecture lists the known ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from convert import arch
from runtime.errors import UnsupportedArchitectureError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(arch.MODULES))
def test_every_listed_name_has_a_registered_converter(name: str) -> None:
    cls = arch.converter_class(name)
    assert cls is not None and cls.__module__ == f"convert.arch.{arch.MODULES[name]}"


def test_every_registered_converter_is_listed() -> None:
    for module in set(arch.MODULES.values()):
        __import__(f"convert.arch.{module}")
    assert set(arch._REGISTRY) == set(arch.MODULES)


def test_a_converter_imports_only_its_own_module() -> None:
    probe = ("import sys; from convert.arch import architecture_for, converter_class; "
             "converter_class('Qwen2ForCausalLM'); "
             "print(sorted(m for m in sys.modules if m.startswith('convert.arch.')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['convert.arch.base', 'convert.arch.qwen2']"


def test_unknown_architecture_names_the_supported_ones() -> None:
    with pytest.raises(UnsupportedArchitectureError) as caught:
        arch.architecture_for({"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox"})
    message = str(caught.value)
    assert "GPTNeoXForCausalLM" in message
    assert all(name in message for name in arch.MODULES)


def test_registering_an_unlisted_name_is_refused() -> None:
    with pytest.raises(ValueError, match="not listed"):
        arch.register("NotListedForCausalLM")(arch.Architecture)
