"""Crash safety and concurrency: kill -9 mid-run, a second writer, readers during writes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli
from runtime.index import Index, IndexOptions
from runtime.index.store import DB_NAME
from tests.index.conftest import CountingEmbedder
from tests.index.corpus import QUESTIONS
from tests.index.sqlite_rows import sqlite_db

REPO = Path(__file__).resolve().parents[2]

# The child indexes with the real MiniLM, one file per commit; a short sleep per batch keeps the
# run long enough to be killed in the middle (the store, not the model, is under test).
INDEXER = textwrap.dedent("""
    import sys, time
    from runtime.index import Index, IndexOptions, SentenceTransformerEmbedder

    class Slow(SentenceTransformerEmbedder):
        def embed(self, texts):
            time.sleep(0.3)
            return super().embed(texts)

    options = IndexOptions(commit_chunks=1)
    with Index.open(sys.argv[1], create=True, options=options, embedder=Slow()) as index:
        index.add([sys.argv[2]])
""")

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from runtime.index.lock import WriteLock
    with WriteLock(Path(sys.argv[1]) / "index.lock"):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def committed_documents(folder: Path) -> int:
    if not (folder / DB_NAME).exists():
        return 0
    db = sqlite3.connect(f"file:{folder / DB_NAME}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    except sqlite3.OperationalError:  # schema not committed yet
        return 0
    finally:
        db.close()


def consistent(index: Index) -> tuple[int, int]:
    db = sqlite_db(index)
    chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    assert db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == chunks
    assert db.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0] == chunks
    assert db.execute("SELECT COALESCE(SUM(n_chunks), 0) FROM documents").fetchone()[0] == chunks
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return index.stats().documents, chunks


def snapshot(index: Index) -> list[tuple[str, str]]:
    return sqlite_db(index).execute(
        "SELECT d.path, c.text FROM chunks c JOIN documents d ON d.id = c.document_id "
        "ORDER BY d.path, c.ordinal").fetchall()


def test_kill_9_mid_run_then_search_then_resume(tmp_path: Path, corpus_dir: Path, corpus_index: Path,
                                                 embedder) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "ix"
    child = subprocess.Popen([sys.executable, "-c", INDEXER, str(folder), str(corpus_dir)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while committed_documents(folder) < 4:
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        assert time.monotonic() < deadline, "the child never committed"
        time.sleep(0.05)
    child.kill()  # SIGKILL on POSIX, TerminateProcess on Windows
    child.wait()

    with Index.open(folder, embedder=embedder) as index:  # readable at its last commit
        done, _ = consistent(index)
        assert 4 <= done < 16
        hits = index.search("What does boiler error F.28 mean?", 3)
        assert hits and all(Path(h.path).exists() for h in hits)

    counting = CountingEmbedder(embedder)
    with Index.open(folder, create=True, embedder=counting) as index:
        report = index.add([corpus_dir])
        assert report.unchanged == done and len(report.added) == 16 - done  # nothing redone
        resumed = snapshot(index)
        assert set(counting.embedded) == {text for path, text in resumed if path in set(report.added)}
        consistent(index)
        with Index.open(corpus_index, embedder=embedder) as clean:
            assert resumed == snapshot(clean)
            for question, _, _ in QUESTIONS:
                got = [(h.path, h.text) for h in index.search(question, 3)]
                assert got == [(h.path, h.text) for h in clean.search(question, 3)]


def test_a_second_writer_fails_clearly_or_waits(tmp_path: Path) -> None:
    folder, docs = tmp_path / "ix", tmp_path / "docs"
    docs.mkdir()
    (docs / "empty.txt").write_text("")  # nothing to embed: no model load needed
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), "60"], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = CliRunner().invoke(cli, ["index", str(docs), "--index", str(folder), "--no-progress"])
        assert result.exit_code == 1
        assert f"being written by process {holder.pid}" in result.output and "--wait" in result.output
    finally:
        holder.kill()
        holder.wait()
    short = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), "1.5"], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    assert short.stdout is not None and short.stdout.readline().strip() == "locked"
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["index", str(docs), "--index", str(folder), "--wait", "60",
                                      "--no-progress"])
    short.wait()
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 0.5  # it queued behind the holder
    assert "1 skipped (1 empty)" in result.output


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="overlap"):
        IndexOptions(chunk_tokens=100, overlap_tokens=60)


REBUILDER = textwrap.dedent("""
    import sys, time
    from runtime.index import Index, IndexOptions, SentenceTransformerEmbedder

    class Slow(SentenceTransformerEmbedder):
        def embed(self, texts):
            time.sleep(0.3)
            return super().embed(texts)

    options = IndexOptions(commit_chunks=1)
    with Index.open(sys.argv[1], rebuild=True, options=options, embedder=Slow()) as index:
        index.add([sys.argv[2]])
""")


@pytest.mark.slow
def test_rebuild_killed_9_leaves_the_old_index_whole_and_searchable(tmp_path: Path, corpus_dir: Path,
                                                                     corpus_index: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    import shutil

    folder, notes = tmp_path / "ix", tmp_path / "notes"
    shutil.copytree(corpus_index, folder)
    notes.mkdir()
    for n in range(12):
        (notes / f"garden{n:02d}.txt").write_text(f"Planter {n} on the rooftop grows zucchini and quinoa.")
    with Index.open(folder, embedder=embedder) as index:
        before = snapshot(index)
    child = subprocess.Popen([sys.executable, "-c", REBUILDER, str(folder), str(notes)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    # Killed once the new index holds a file (the old code had emptied the old one by then).
    documents = len({path for path, _ in before})
    while committed_documents(folder / "rebuild") < 1 and committed_documents(folder) == documents:
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        assert time.monotonic() < deadline, "the child never committed"
        time.sleep(0.05)
    child.kill()
    child.wait()

    with Index.open(folder, embedder=embedder) as index:
        assert snapshot(index) == before
        consistent(index)
        hits = index.search("What does boiler error F.28 mean?", 3)
        assert hits and hits[0].path.endswith("boiler.txt")
        assert index.search("rooftop zucchini", 3, mode="keyword") == []

    with Index.open(folder, rebuild=True, embedder=embedder) as index:  # the next rebuild finishes
        report = index.add([notes])
        assert len(report.added) == 12 and consistent(index) == (12, 12)
        assert index.search("What does boiler error F.28 mean?", 3, mode="keyword") == []
        assert Path(index.search("rooftop planter 7 zucchini", 1)[0].path).parent == notes
    assert not (folder / "rebuild").exists()
