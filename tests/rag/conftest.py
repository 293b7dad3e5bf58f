"""RAG fixtures: a small corpus indexed once per session with the real MiniLM, and the CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli

# Four short documents on unrelated subjects, so the passage that answers each question is
# unambiguous, and the facts are invented, so a correct answer must come from the documents.
CORPUS = {
    "coffee/zorblat.md": """# The Zorblat 3000 coffee machine

The Zorblat 3000 heats water to 94 degrees Celsius in 40 seconds. Its water tank holds
1.8 litres and its bean hopper holds 250 grams.

## Descaling

To descale the Zorblat 3000, fill the tank with white vinegar and run the cleaning cycle
twice. Descale it every 60 days in hard-water areas.
""",
    "garden/tomatoes.md": """# Growing Krellian tomatoes

Krellian tomatoes need eleven hours of sunlight a day. Water them every morning with
two litres of rainwater per plant. They ripen 70 days after planting and turn violet
when ripe.
""",
    "bikes/velomax.txt": """Velomax touring bicycle manual

The Velomax has 27 gears and a steel frame that weighs 3.2 kilograms. Inflate its tyres to
4.5 bar. The chain must be oiled every 500 kilometres with the supplied Velomax chain oil.
""",
    "office/policy.rst": """Travel policy
=============

Employees of Quorra Ltd book train travel through the Quorra travel desk. Trips under
400 kilometres must go by train, not by plane. Receipts are submitted within 14 days.
""",
}


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rag-corpus")
    for relative, text in CORPUS.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def index_dir(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:  # type: ignore[no-untyped-def]
    """The corpus indexed with the real MiniLM (the session's), FAISS and SQLite (hybrid search)."""
    from runtime.index import Index

    folder = tmp_path_factory.mktemp("rag-index") / "index"
    with Index.open(folder, create=True, embedder=embedder) as index:
        index.add([corpus_dir])
    return folder


@pytest.fixture(scope="session")
def any_index_dir(store: str, request: pytest.FixtureRequest, corpus_dir: Path, embedder) -> str:  # type: ignore[no-untyped-def]
    """The corpus indexed in each store: the folder of ``index_dir``, or a PostgreSQL database."""
    if store == "folder":
        return str(request.getfixturevalue("index_dir"))
    from runtime.index import Index

    url = request.getfixturevalue("pg_server").create_database("rt_rag_corpus")
    with Index.open(url, create=True, embedder=embedder) as index:
        index.add([corpus_dir])
    return str(url)


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    """``rt ARGS`` through Click's runner: exit code, stdout, stderr.

    ``rt ask`` and ``rt chat`` get ``--threads 1`` unless the test names a count: tests compare
    the generated text, and rt otherwise picks the count from the cores that are busy at load,
    which on a busy machine changes llama.cpp's numerics and with them the greedy answer."""
    if args and args[0] in ("ask", "chat") and "--help" not in args and "--threads" not in args:
        args = (*args, "--threads", "1")
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr
