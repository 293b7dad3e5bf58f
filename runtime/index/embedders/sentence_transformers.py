"""The embedding plug point and its sentence-transformers implementation.

An :class:`Embedder` turns texts into L2-normalised float32 vectors; it also exposes its
tokenizer's character offsets so chunks can be measured in the model's own tokens.
sentence-transformers (and torch behind it) is imported only when a model is loaded: ``rt
--help`` and keyword-only search never pay for it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.errors import ModelLoadError, ModelNotFoundError
from runtime.index.config import DEFAULT_EMBEDDING_MODEL
from runtime.index.embedders.base import canonical_model_name
from runtime.limits import heavy_import

if TYPE_CHECKING:
    from numpy.typing import NDArray

logger = logging.getLogger(__name__)

class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU, by name or folder (``None``: embedded MiniLM)."""

    def __init__(self, model: str | None = None, *, batch_size: int = 32, device: str = "cpu") -> None:
        self.name = canonical_model_name(model)
        self.batch_size = batch_size
        self._model = _load(self.name, device)
        dimension = getattr(self._model, "get_embedding_dimension", None) or getattr(
            self._model, "get_sentence_embedding_dimension"
        )
        self.dimension = int(dimension())
        self.max_tokens = int(self._model.max_seq_length or 512)
        self._tokenizer = _offsets_tokenizer(self._model.tokenizer)

    @property
    def model(self) -> Any:
        """The underlying ``SentenceTransformer`` (for benchmarks and advanced use)."""
        return self._model

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Normalised document vectors, ``batch_size`` texts per forward pass."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encode = getattr(self._model, "encode_document", None) or self._model.encode
        vectors = encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_query(self, query: str) -> NDArray[np.float32]:
        """The normalised vector of one query (with the model's query prompt, if any).

        One short query runs on one torch thread: intra-op threads only add synchronisation
        for so little work, and on a busy 2-core machine they made it 10-30x slower (measured
        12-18 ms on one thread against 120-560 ms on two; benchmarks/bench_index.py).
        """
        import torch

        encode = getattr(self._model, "encode_query", None) or self._model.encode
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            vector = encode([query], normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)
        finally:
            torch.set_num_threads(threads)
        return np.asarray(vector[0], dtype=np.float32)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of ``text`` (no special tokens, no truncation)."""
        if self._tokenizer is None:  # slow tokenizer: whitespace words approximate tokens
            return _word_offsets(text)
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)


def _load(name: str, device: str) -> Any:
    from runtime.models.embedded import default_embedding_model_path

    source = str(default_embedding_model_path()) if name == DEFAULT_EMBEDDING_MODEL else name
    logger.info("loading embedding model %s from %s", name, source)
    # The default is on disk: the hub is never asked (local_files_only). Not HF_HUB_OFFLINE for
    # the load: huggingface_hub reads that once, when first imported, so a process whose first
    # import of it happened then stayed offline, and a later `rt convert`/download_gguf in the
    # same script failed with "offline mode is enabled".
    # torch dies natively under a low `ulimit -v`: refuse first, with the numbers
    with heavy_import("loading the embedding model (torch)"), _quiet_transformers():
        from sentence_transformers import SentenceTransformer

        try:
            return SentenceTransformer(source, device=device,
                                       local_files_only=name == DEFAULT_EMBEDDING_MODEL)
        except (OSError, ValueError) as exc:
            if not Path(source).exists():
                raise ModelNotFoundError(
                    f"embedding model {name!r} is not a folder and could not be fetched ({exc})",
                    hint="give a sentence-transformers model folder, or a hub name while online",
                ) from exc
            raise ModelLoadError(f"cannot load embedding model {source}: {exc}") from exc


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No "Loading weights" bar from transformers on rt's stderr while the model loads."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        yield
        return
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _offsets_tokenizer(tokenizer: Any) -> Any:
    """A copy of the fast tokenizer with truncation and padding off, for whole documents."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy


def _word_offsets(text: str) -> list[tuple[int, int]]:
    import re

    return [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]
