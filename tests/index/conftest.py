"""Index fixtures: the real MiniLM loaded once per session, and the corpus indexed once."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tests.index.corpus import write_corpus


class CountingEmbedder:
    """The real embedder, recording every text it is asked to embed."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.name, self.dimension, self.max_tokens = inner.name, inner.dimension, inner.max_tokens
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += list(texts)
        return self.inner.embed(texts)

    def embed_query(self, query: str) -> np.ndarray:
        return self.inner.embed_query(query)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return self.inner.token_offsets(text)


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


@pytest.fixture(scope="session")
def embedder(minilm_path: Path):  # type: ignore[no-untyped-def]
    """all-MiniLM-L6-v2 from its PyPI package, loaded once (the same folder as ``minilm_path``)."""
    from runtime.index import SentenceTransformerEmbedder
    from runtime.models.embedded import default_embedding_model_path

    assert default_embedding_model_path() == minilm_path
    loaded = SentenceTransformerEmbedder()
    assert loaded.name == "all-MiniLM-L6-v2" and loaded.dimension == 384 and loaded.max_tokens == 256
    return loaded


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, embedder) -> Path:  # type: ignore[no-untyped-def]
    """The corpus indexed once with default options; tests only read it."""
    from runtime.index import Index

    folder = tmp_path_factory.mktemp("corpus-index")
    with Index.open(folder, create=True, embedder=embedder) as index:
        report = index.add([corpus_dir])
    assert not report.problems and not report.skipped, report.summary()
    return folder


@pytest.fixture(scope="session")
def any_corpus_index(store: str, request: pytest.FixtureRequest, corpus_dir: Path, embedder) -> str:  # type: ignore[no-untyped-def]
    """The corpus indexed once in each store: the folder of ``corpus_index``, or a database URL."""
    if store == "folder":
        return str(request.getfixturevalue("corpus_index"))
    from runtime.index import Index

    url = request.getfixturevalue("pg_server").create_database("rt_corpus")
    with Index.open(url, create=True, embedder=embedder) as index:
        report = index.add([corpus_dir])
    assert not report.problems and not report.skipped, report.summary()
    return str(url)
