"""rt's runtime: load GGUF models with llama.cpp through mmap and answer questions.

The public API in one import::

    from runtime import RAG, GenerateOptions, Index, LoadOptions, Model

The names are imported lazily so that ``import runtime`` stays cheap (no llama.cpp, no torch)
until a model or an index is actually used; type checkers see them through the imports below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.lazy import lazy_exports

if TYPE_CHECKING:
    from runtime.config import GenerateOptions, LoadOptions
    from runtime.errors import RtError
    from runtime.index import Index
    from runtime.llm.model import Model
    from runtime.models.gguf_file import inspect_gguf
    from runtime.models.registry import Registry, resolve_model
    from runtime.rag.rag import RAG

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

__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = ["GenerateOptions", "Index", "LoadOptions", "Model", "RAG", "Registry", "RtError", "inspect_gguf",
           "resolve_model"]
