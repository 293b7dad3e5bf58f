"""A deterministic fake of the embedder plug point, for tests that check what rt does with an
index (its files, its output, its errors), not what it retrieves: no model to load, no torch.

It is not an rt feature: an index it built records the name ``hashing-test-embedder``, which rt
itself cannot load; open such an index with ``Index.open(folder, embedder=HashingEmbedder())``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np


class HashingEmbedder:
    """A deterministic fake for the plug point's contract: words hashed into a small vector."""

    def __init__(self, name: str = "hashing-test-embedder", dimension: int = 16) -> None:
        self.name, self.dimension, self.max_tokens = name, dimension, 64

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]
