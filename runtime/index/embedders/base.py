"""The embedder plug point: texts in, unit vectors out (txtai's vectors backends have one such interface).

Implementations: :mod:`~runtime.index.embedders.sentence_transformers` (any sentence-transformers
model, torch), :mod:`~runtime.index.embedders.light` (BERT-family models in numpy, for queries),
:mod:`~runtime.index.embedders.remote` (an OpenAI-compatible ``/v1/embeddings``);
:mod:`~runtime.index.embedders.factory` picks the one to search with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from runtime.errors import ModelNotFoundError
from runtime.index.config import DEFAULT_EMBEDDING_MODEL

if TYPE_CHECKING:
    from numpy.typing import NDArray

_DEFAULT_ALIASES = {DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"}


@runtime_checkable
class Embedder(Protocol):
    """Texts in, one normalised row per text out (``float32``, shape ``(len(texts), dimension)``).

    ``name`` is recorded in the index; ``max_tokens`` is the longest input the model reads
    (special tokens included); ``token_offsets`` gives the character span of each token.
    """

    name: str
    dimension: int
    max_tokens: int

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]: ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]: ...


def embed_query(embedder: Embedder, query: str) -> NDArray[np.float32]:
    """The query's vector, through the model's query prompt when it has one."""
    method = getattr(embedder, "embed_query", None)
    vector = method(query) if callable(method) else embedder.embed([query])[0]
    return np.asarray(vector, dtype=np.float32).reshape(-1)


def canonical_model_name(spec: str | None) -> str:
    """The name an index records for ``spec``: the default's short name, or an absolute path."""
    if not spec or spec in _DEFAULT_ALIASES:
        return DEFAULT_EMBEDDING_MODEL
    path = Path(spec).expanduser()
    if not path.exists():
        return spec
    from runtime.models.embedded import default_embedding_model_path

    try:
        if path.resolve() == default_embedding_model_path().resolve():
            return DEFAULT_EMBEDDING_MODEL
    except ModelNotFoundError:
        pass
    return str(path.resolve())
