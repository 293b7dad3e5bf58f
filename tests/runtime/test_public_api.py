"""The public API in one import: ``from runtime import Model, RAG, Index, GenerateOptions,
LoadOptions``, lazily (``import runtime`` loads neither llama.cpp nor torch), and visible to mypy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import runtime

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = ("Model", "RAG", "Index", "GenerateOptions", "LoadOptions")


def test_the_public_names_come_from_their_modules() -> None:
    from runtime import RAG, GenerateOptions, Index, LoadOptions, Model
    from runtime.config import GenerateOptions as options_class
    from runtime.index import Index as index_class
    from runtime.llm.model import Model as model_class
    from runtime.rag.rag import RAG as rag_class

    assert (Model, RAG, Index, GenerateOptions) == (model_class, rag_class, index_class, options_class)
    assert LoadOptions().n_ctx > 0
    assert set(PUBLIC) <= set(runtime.__all__) == set(runtime._EXPORTS)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        runtime.Nope  # noqa: B018


def test_importing_runtime_loads_nothing_heavy() -> None:
    probe = ("import json, sys, runtime; "
             "print(json.dumps([m for m in ('llama_cpp', 'torch', 'faiss', 'sentence_transformers') "
             "if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.slow  # runs mypy: half a minute
def test_mypy_sees_the_lazy_exports(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    script = tmp_path / "uses_api.py"
    script.write_text("from runtime import " + ", ".join(PUBLIC) + "\n"
                      + "".join(f"reveal_type({name})\n" for name in PUBLIC), encoding="utf-8")
    out, err, status = api.run([str(script), "--follow-imports=silent"])
    assert "has no attribute" not in out and "Module \"runtime\" has no" not in out, out
    for name, module in (("Model", "runtime.llm.model"), ("RAG", "runtime.rag.rag"),
                         ("LoadOptions", "runtime.config"), ("GenerateOptions", "runtime.config")):
        assert f"{module}.{name}" in out, out
    assert "runtime.index" in out and "Index" in out, out
