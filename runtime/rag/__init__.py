"""Answers from documents: retrieval into a prompt (:mod:`prompt`), the RAG session and chat
(:mod:`rag`) and the answer record (:mod:`answer`).

``from runtime.rag import RAG`` resolves lazily, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RAG": "runtime.rag.rag",
    "Chat": "runtime.rag.rag",
    "AnswerStream": "runtime.rag.rag",
    "Answer": "runtime.rag.answer",
    "Source": "runtime.rag.answer",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime.rag' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_EXPORTS)
