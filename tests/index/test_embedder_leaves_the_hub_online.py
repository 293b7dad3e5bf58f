"""Loading the embedded MiniLM must not leave the process offline for the hub.

huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported. rt used to set it while
the default embedder loaded, so a script whose first import of huggingface_hub happened then
(sentence-transformers imports it) could no longer download a model: `download_gguf` failed
with "offline mode is enabled". Found when the suite ran in another order (pytest-xdist).
A fresh interpreter gives the import order of such a script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.models.registry import sha256_file
from tests.hubserver import GGUF_FILE, GGUF_REPO, HubServer, gguf_repo, hub  # noqa: F401

SCRIPT = """
import sys
from pathlib import Path

from runtime.index import SentenceTransformerEmbedder
from runtime.models.hub import download_gguf

assert SentenceTransformerEmbedder().dimension == 384
print(download_gguf(sys.argv[1], "Q4_K_M", Path(sys.argv[2])).path)
"""


@pytest.mark.slow
def test_a_script_can_download_a_model_after_loading_the_embedded_embedder(
        gguf_repo: HubServer, smollm2_path: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "models"
    done = subprocess.run([sys.executable, "-c", SCRIPT, GGUF_REPO, str(out)], env=os.environ.copy(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Path(done.stdout.strip().splitlines()[-1]) == out / GGUF_FILE
    assert sha256_file(out / GGUF_FILE) == sha256_file(smollm2_path)
