"""An :class:`~runtime.index.embedders.base.Embedder` on an OpenAI-compatible ``/v1/embeddings`` server
(``--embed-url``): ``rt serve``, llama-server, vLLM, Ollama, ...

Its ``name`` is the model id the server reports, which the index records: an index built with
``rt serve``'s all-MiniLM-L6-v2 is the same as one built locally with it, and one built with any
other model is refused with :class:`~runtime.errors.IndexMismatchError`, as for a local model.
The server's tokenizer is not known, so chunks are measured in pieces of at most 4 characters,
which overcounts tokens: chunks come out smaller than the model's limit, never over it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from runtime.config import RemoteOptions
from runtime.errors import RemoteBackendError

BATCH = 64
# The widest embedding models serve 4096 (e5-mistral, Qwen3-Embedding-8B); a server answering
# millions of numbers per text is refused, and its answer is not read past what the largest
# allowed vectors take as JSON (a number is at most ~24 characters with its separator).
MAX_DIMENSION = 16384
JSON_BYTES_PER_NUMBER = 32
_PIECES = re.compile(r"\w{1,4}|[^\w\s]")


class RemoteEmbedder:
    """Texts in, normalised ``float32`` rows out, from a server's ``/v1/embeddings``."""

    def __init__(self, url: str, model: str | None = None, *, api_key: str | None = None,
                 options: RemoteOptions = RemoteOptions(), max_tokens: int = 256) -> None:
        from runtime.http_client import RemoteClient

        self.client = RemoteClient(url, api_key=api_key, options=options, what="--embed-url")
        self.url = self.client.base
        self._model = model
        probe, name = self._request(["dimension probe"])
        self.name: str = model or name or f"{self.url}/embeddings"
        self.dimension: int = int(probe.shape[1])
        self.max_tokens = max_tokens

    def _request(self, texts: Sequence[str]) -> tuple[np.ndarray, str]:
        body = {"input": list(texts)} | ({"model": self._model} if self._model else {})
        limit = len(texts) * MAX_DIMENSION * JSON_BYTES_PER_NUMBER + 64 * 1024
        answer = self.client.post("/embeddings", body, max_bytes=limit)
        try:
            rows = sorted(answer["data"], key=lambda row: row["index"])
            if any(len(row["embedding"]) > MAX_DIMENSION for row in rows):
                raise ValueError(f"a vector has over {MAX_DIMENSION:,} dimensions")
            vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteBackendError(f"{self.url}/embeddings answered without float embeddings ({exc})",
                                     url=self.url, hint="is this an OpenAI-compatible embeddings server?") from None
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise RemoteBackendError(f"{self.url}/embeddings returned {len(vectors)} vectors for {len(texts)} texts",
                                     url=self.url)
        expected = getattr(self, "dimension", vectors.shape[1])  # the probe sets it
        if vectors.shape[1] == 0:
            raise RemoteBackendError(f"{self.url}/embeddings returned empty vectors", url=self.url)
        if vectors.shape[1] != expected:
            raise RemoteBackendError(f"{self.url}/embeddings returned {vectors.shape[1]}-dimension vectors "
                                     f"where it gave {expected} before", url=self.url,
                                     hint="is the server's model changing under rt?")
        if not np.isfinite(vectors).all():
            raise RemoteBackendError(f"{self.url}/embeddings returned vectors with NaN or infinite numbers",
                                     url=self.url, hint="check the server's model and log")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12), str(answer.get("model") or self._model or "")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised vectors, ``BATCH`` texts per request."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = [self._request(texts[i:i + BATCH])[0] for i in range(0, len(texts), BATCH)]
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of pieces of at most 4 characters (at least as many as real tokens)."""
        return [(m.start(), m.end()) for m in _PIECES.finditer(text)]

    def close(self) -> None:
        self.client.close()
