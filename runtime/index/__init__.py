"""rt's documents index: FAISS + SQLite (FTS5) over a person's files, incremental and crash-safe.

``from runtime.index import Index, Hit`` is the API the RAG code and scripts use. The names
are resolved lazily so that importing ``runtime.index.config`` (as ``rt --help`` does) does not
pull in numpy, SQLite or the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.lazy import lazy_exports

if TYPE_CHECKING:
    from runtime.index.config import IndexOptions  # noqa: F401 (re-exported lazily)
    from runtime.index.embedders.base import Embedder  # noqa: F401 (re-exported lazily)
    from runtime.index.embedders.sentence_transformers import SentenceTransformerEmbedder  # noqa: F401 (lazily)
    from runtime.index.index import Hit, Index, IndexStats  # noqa: F401 (re-exported lazily)
    from runtime.index.ingest import IndexReport  # noqa: F401 (re-exported lazily)

_EXPORTS = {
    "Embedder": "runtime.index.embedders.base",
    "SentenceTransformerEmbedder": "runtime.index.embedders.sentence_transformers",
    "Hit": "runtime.index.index",
    "Index": "runtime.index.index",
    "IndexStats": "runtime.index.index",
    "IndexOptions": "runtime.index.config",
    "IndexReport": "runtime.index.ingest",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
