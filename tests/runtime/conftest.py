"""Runtime fixtures: the bad GGUF files, made once per session (each is a patched ~100 MB copy
of SmolLM2; three modules used to make all of them each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.bad_gguf import make_all


@pytest.fixture(scope="session")
def bad_gguf_files(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> dict[str, Path]:
    """Every file of ``bad_gguf.BAD_FILES``, name -> path; tests only read them."""
    return make_all(tmp_path_factory.mktemp("bad-gguf"), smollm2_path)
