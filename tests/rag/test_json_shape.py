"""``rt ask --json`` prints one shape: the same keys with and without ``--no-rag``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.rag.conftest import run

# Model processes are shared across the session, emptied between tests (tests/shared_model.py)
pytestmark = pytest.mark.usefixtures("shared_model_process")


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key of ``value``'s nested objects, as dotted paths (lists are not entered)."""
    if not isinstance(value, dict):
        return set()
    paths = set()
    for key, inner in value.items():
        paths.add(prefix + key)
        paths |= key_paths(inner, prefix + key + ".")
    return paths


def test_ask_json_has_the_same_keys_with_and_without_retrieval(index_dir: Path, smollm2_path: Path) -> None:
    common = ("--model", str(smollm2_path), "--json", "--max-tokens", "8", "--threads", "1")
    code, out, err = run("ask", "How often must the Velomax chain be oiled?", "--index", str(index_dir), *common)
    assert code == 0, err
    with_rag = json.loads(out)
    code, out, err = run("ask", "--no-rag", "What is the capital of France?", *common)
    assert code == 0, err
    alone = json.loads(out)

    # nested objects that only retrieval fills (coverage) are null without it: compare the keys
    # that both have objects for, and the top level, usage and timings exactly
    assert set(alone) == set(with_rag)
    for part in ("usage", "timings"):
        assert set(alone[part]) == set(with_rag[part]), part
    assert key_paths(alone) <= key_paths(with_rag)

    assert alone["sources"] == [] and alone["citations"] == [] and alone["covered"] is None
    assert alone["from_documents"] is False and alone["index"] is None
    assert with_rag["sources"] and with_rag["covered"] is True and with_rag["index"] == str(index_dir)
    for data in (alone, with_rag):
        assert data["model"] == smollm2_path.stem and data["model_path"] == str(smollm2_path)
        assert data["usage"]["completion_tokens"] > 0 and data["timings"]["generation"] > 0
        assert data["timings"]["model_load"] > 0
