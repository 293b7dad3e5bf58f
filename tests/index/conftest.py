"""Index fixtures: the corpus indexed once (with the session's MiniLM, tests/conftest.py's ``embedder``)."""

from __future__ import annotations

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
