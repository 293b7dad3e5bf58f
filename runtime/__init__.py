"""rt's runtime: load GGUF models with llama.cpp through mmap and answer questions.

The public API is imported lazily so that ``import runtime`` stays cheap (no llama.cpp, no
torch) until a model or an index is actually used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Model": "runtime.llm.model",
    "LoadOptions": "runtime.config",
    "GenerateOptions": "runtime.config",
    "RtError": "runtime.errors",
    "Registry": "runtime.models.registry",
    "resolve_model": "runtime.models.registry",
    "inspect_gguf": "runtime.models.gguf_file",
    "Index": "runtime.index",
    "RAG": "runtime.rag.rag",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_EXPORTS)
