"""runtime/index/'s layout (issue 22): the format readers never import the registry that picks
them, and each embedder, the factory and the fusion stand in modules of their own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules_loaded_by(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         check=True).stdout
    return set(out.split())


def test_the_format_readers_import_the_shared_base_never_the_registry() -> None:
    for name in ("common", "plain", "html", "pdf", "office", "ebook", "mail", "archive"):
        loaded = _modules_loaded_by(f"runtime.index.formats.{name}")
        assert "runtime.index.readers" not in loaded, name
        assert "runtime.index.formats.base" in loaded or name == "archive", name


def test_the_registry_reads_plain_html_and_pdf_from_formats() -> None:
    from runtime.index import readers
    from runtime.index.formats import html, pdf, plain

    assert readers.reader_for(Path("a.txt")).read is plain.read_plain_stream
    assert readers.reader_for(Path("a.HTM")).read is html.read_html_stream
    assert readers.reader_for(Path("a.pdf")).read is pdf.read_pdf_stream


def test_embedders_factory_and_fusion_have_modules_of_their_own() -> None:
    from runtime.index.embedders import base, factory, light, remote, sentence_transformers
    from runtime.index.fusion import reciprocal_rank_fusion, weighted_fusion

    assert factory.query_embedder.__module__ == factory.__name__
    assert not hasattr(light, "query_embedder") and not hasattr(sentence_transformers, "Embedder")
    assert {base.Embedder.__module__, remote.RemoteEmbedder.__module__} == {base.__name__, remote.__name__}
    assert reciprocal_rank_fusion.__module__ == weighted_fusion.__module__ == "runtime.index.fusion"
    assert not (ROOT / "runtime" / "index" / "embedder.py").exists()
