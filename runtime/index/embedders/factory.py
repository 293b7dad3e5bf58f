"""Which embedder searches an index: the numpy one where it reproduces the model, else torch's."""

from __future__ import annotations

import logging

from runtime import env
from runtime.index.embedders.base import Embedder, canonical_model_name
from runtime.index.embedders.light import Declined, LightEmbedder
from runtime.index.embedders.sentence_transformers import SentenceTransformerEmbedder

logger = logging.getLogger(__name__)


def query_embedder(model: str | None = None, *, batch_size: int = 32, light: bool = True) -> Embedder:
    """The embedder to search with: :class:`LightEmbedder` when ``light`` (``RT_LIGHT_EMBEDDER``
    overrides it: :func:`runtime.env.light_embedder`) and the folder allows, else
    :class:`~runtime.index.embedders.sentence_transformers.SentenceTransformerEmbedder` (loaded as before)."""
    if env.light_embedder(light):
        try:
            return LightEmbedder(model)
        except Declined as why:
            logger.debug("numpy embedder declined %s (%s): loading sentence-transformers",
                         canonical_model_name(model), why)
    return SentenceTransformerEmbedder(model, batch_size=batch_size)
