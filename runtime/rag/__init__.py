"""Answers from documents: retrieval into a prompt (:mod:`prompt`), the RAG session and chat
(:mod:`rag`) and the answer record (:mod:`answer`).

``from runtime.rag import RAG`` resolves lazily, so importing this package stays cheap.
"""

from __future__ import annotations

from runtime.lazy import lazy_exports

_EXPORTS = {
    "RAG": "runtime.rag.rag",
    "Chat": "runtime.rag.rag",
    "AnswerStream": "runtime.rag.rag",
    "Answer": "runtime.rag.answer",
    "Source": "runtime.rag.answer",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)
