"""An optional second stage: a cross-encoder reads the query with each candidate and reorders them.

``rt search/ask/chat --rerank MODEL`` loads a sentence-transformers ``CrossEncoder`` (a local
folder, or a Hugging Face repo fetched through rt's hub code, :func:`runtime.models.hub.checkpoint_folder`,
safetensors only) and rescores the first ``IndexOptions.rerank_candidates`` hits of the hybrid
search. It costs one model forward pass per candidate, so it is off by default.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from runtime.errors import ModelLoadError

logger = logging.getLogger(__name__)


class Reranker(Protocol):
    """Scores of ``texts`` as answers to ``query`` (higher is better), one per text."""

    name: str

    def scores(self, query: str, texts: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder`` on the CPU, loaded from ``model`` (see :func:`checkpoint_folder`)."""

    def __init__(self, model: str | Path, *, batch_size: int = 16, progress: bool = False) -> None:
        from runtime.models.hub import checkpoint_folder

        folder = checkpoint_folder(model, progress=progress)
        self.name = str(model)
        self.batch_size = batch_size
        try:
            from sentence_transformers import CrossEncoder

            self._model: Any = CrossEncoder(str(folder), device="cpu")
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load the reranker {model}: {exc}",
                                 hint="--rerank takes a sentence-transformers CrossEncoder folder or "
                                 "Hugging Face repo") from exc

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        predicted = self._model.predict([(query, t) for t in texts], batch_size=self.batch_size,
                                        show_progress_bar=False, convert_to_numpy=True)
        return [float(s) for s in predicted.reshape(len(texts), -1)[:, -1]]


class RankedHit(Protocol):
    """A first-stage hit (:class:`runtime.index.index.Hit`): a dataclass with the passage's text and
    a ``score`` field. A protocol, so this module need not import the index that imports it."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def text(self) -> str: ...


_Hit = TypeVar("_Hit", bound=RankedHit)


def rerank(reranker: Reranker, query: str, hits: Sequence[_Hit], k: int) -> list[_Hit]:
    """The ``k`` best of ``hits`` by ``reranker``'s score (which becomes each hit's ``score``);
    equal scores keep the first stage's order."""
    scores = reranker.scores(query, [h.text for h in hits])
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
    return [dataclasses.replace(hits[i], score=scores[i]) for i in order[:k]]
