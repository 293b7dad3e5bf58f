"""Several rt processes on one index at once (issue 8 §4, concurrency).

``rt search`` and ``rt ask`` while ``rt index`` adds files: readers see the last commit, never an
error or a half-written state. Two ``rt index`` at once: one refuses clearly (or, with --wait,
queues). Either way the index ends identical to a clean rebuild.

Real processes run the real CLI; the writer's embedder sleeps before each batch (``SLOW_RT``) so
that its run lasts long enough for the others to overlap it: the store and its lock, not the
model, are under test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from runtime.errors import IndexLockedError
from runtime.index import Index
from runtime.index.lock import WriteLock
from tests.index.corpus import QUESTIONS, write_corpus

REPO = Path(__file__).resolve().parents[2]
K = 3

# argv: seconds to sleep before each embedding batch, start file ("-": none), then rt's arguments.
# Everything rt index needs is imported before the start file is awaited, so runs released
# together reach the index lock together.
SLOW_RT = """
import sys, time
from pathlib import Path
from runtime.index.embedders.sentence_transformers import SentenceTransformerEmbedder
import runtime.cli.index, runtime.index, sentence_transformers
pause, start = float(sys.argv[1]), sys.argv[2]
embed = SentenceTransformerEmbedder.embed
def slow(self, texts):
    time.sleep(pause)
    return embed(self, texts)
SentenceTransformerEmbedder.embed = slow
while start != "-" and not Path(start).exists():
    time.sleep(0.01)
sys.argv[1:] = sys.argv[3:]
from runtime.cli import main
main()
"""

Result = list[tuple[str, str]]  # (path, text) of each hit, best first


def _rt(*args: str, pause: float = 0.0, start: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", SLOW_RT, str(pause), str(start or "-"), *args],
                            cwd=REPO, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _finish(run: subprocess.Popen[str], stdin: str | None = None) -> tuple[int, str, str]:
    out, err = run.communicate(stdin, timeout=600)
    return run.returncode, out, err


def _results(index: Index) -> dict[str, Result]:
    return {q: [(h.path, h.text) for h in index.search(q, K)] for q, _, _ in QUESTIONS}


def _snapshot(index: Index) -> list[tuple[str, str]]:
    """``(path, chunk text)`` of every chunk, by path and reading order (through the Index, so
    in either store)."""
    by_document = index.chunk_ids_by_document()
    rows = index.chunks([i for ids in by_document.values() for i in ids])
    return [(path, rows[i].text) for path, ids in sorted(by_document.items()) for i in ids]


def _split_corpus(tmp_path: Path) -> tuple[Path, Path]:
    """The corpus in ``docs`` with every other file moved to ``later`` (same relative paths)."""
    docs, later = write_corpus(tmp_path / "docs"), tmp_path / "later"
    for path in sorted(p for p in docs.rglob("*") if p.is_file())[::2]:
        target = later / path.relative_to(docs)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
    return docs, later


def _bring_back(docs: Path, later: Path) -> None:
    for path in sorted(p for p in later.rglob("*") if p.is_file()):
        (docs / path.relative_to(later)).parent.mkdir(parents=True, exist_ok=True)
        path.rename(docs / path.relative_to(later))
    shutil.rmtree(later)


def _clean_rebuild(docs: Path, folder: Path | str, embedder) -> tuple[dict[str, Result], list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    with Index.open(folder, create=True, embedder=embedder) as clean:
        clean.add([docs])
        return _results(clean), _snapshot(clean)


@pytest.mark.slow
def test_readers_during_rt_index_see_the_last_commit(tmp_path: Path, embedder, store: str,  # type: ignore[no-untyped-def]
                                                     index_location: str, request: pytest.FixtureRequest) -> None:
    docs, later = _split_corpus(tmp_path)
    folder = index_location  # a folder, or a database on the test server
    with Index.open(folder, create=True, embedder=embedder) as index:
        index.add([docs])
        before = _results(index)
    _bring_back(docs, later)
    clean = (request.getfixturevalue("pg_server").create_database(f"rt_clean_{uuid.uuid4().hex}")
             if store == "postgresql" else tmp_path / "clean")
    after, after_chunks = _clean_rebuild(docs, clean, embedder)
    assert any(before[q] != after[q] for q in before), "the added files change no result"

    writer = _rt("index", str(docs), "--index", str(folder), "--batch-size", "2", "--no-progress", pause=0.5)
    searcher = _rt("search", "-", "--json", "-k", str(K), "--index", str(folder))
    asker = _rt("ask", "--json", "-k", str(K), "--max-tokens", "4", "--no-pack",  # whole chunks, to compare
                "--index", str(folder), QUESTIONS[0][0])
    changed = [q for q in before if before[q] != after[q]]
    seen: dict[str, list[str]] = {q: [] for q in changed}
    with Index.open(folder, embedder=embedder) as reader:  # one long-lived reader, in this process
        while writer.poll() is None:
            for question in changed:
                got = [(h.path, h.text) for h in reader.search(question, K)]
                assert got in (before[question], after[question]), question
                seen[question].append("after" if got == after[question] else "before")
            time.sleep(0.2)
        final = _results(reader)

    code, out, err = _finish(writer)
    assert code == 0, err
    code, out, err = _finish(searcher, "\n".join(q for q, _, _ in QUESTIONS) + "\n")
    assert code == 0, err
    lists = [json.loads(line) for line in out.splitlines()]
    assert len(lists) == len(QUESTIONS)
    for (question, _, _), hits in zip(QUESTIONS, lists):
        assert [(h["path"], h["text"]) for h in hits] in (before[question], after[question]), question
    code, out, err = _finish(asker)
    assert code == 0, err
    sources = [(s["path"], s["text"]) for s in json.loads(out)["sources"]]
    assert sources and set(sources) <= set(after_chunks)

    assert any(seen.values()), "the reader never searched while rt index ran"
    for states in seen.values():  # a reader never goes back to an older commit
        assert states == sorted(states, key=["before", "after"].index)
    assert final == after
    with Index.open(folder, embedder=embedder) as index:
        assert _snapshot(index) == after_chunks


@pytest.mark.slow
def test_two_rt_index_at_once_one_refuses_clearly_and_one_with_wait_queues(
        tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    docs = write_corpus(tmp_path / "docs")
    clean_results, clean_chunks = _clean_rebuild(docs, tmp_path / "clean", embedder)
    folder, start = tmp_path / "ix", tmp_path / "start"
    args = ("index", str(docs), "--index", str(folder), "--no-progress", "--json")
    runs = [_rt(*args, pause=0.3, start=start), _rt(*args, pause=0.3, start=start),
            _rt(*args, "--wait", "600", start=start)]
    time.sleep(1.0)  # all three imported and waiting
    start.touch()
    finished = [_finish(run) for run in runs]

    refused = 0
    reports = []
    for run, (code, out, err) in zip(runs, finished):
        if code == 0:
            reports.append(json.loads(out))
            continue
        refused += 1
        assert run is not runs[2] and code == 1, err
        said = re.search(r"is being written by (?:process (\d+)|another process)", err)
        assert said and "--wait" in err and "Traceback" not in err, err
        if said.group(1):  # the holder's pid, when it had written it yet
            assert int(said.group(1)) in {r.pid for r in runs if r is not run}
    assert refused >= 1  # the two without --wait overlapped: at most one of them got the lock
    documents = len({path for path, _ in clean_chunks})
    assert sum(len(r["added"]) for r in reports) == documents  # the one queued found it all done
    assert all(r["unchanged"] in (0, documents) for r in reports)

    with Index.open(folder, embedder=embedder) as index:
        assert _snapshot(index) == clean_chunks
        assert _results(index) == clean_results


def test_the_lock_names_its_holder_only_while_that_process_lives(tmp_path: Path) -> None:
    path = tmp_path / "index.lock"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid belongs to no process now
    with WriteLock(path) as held:
        assert held.pid_path.read_text() == str(os.getpid())
        with pytest.raises(IndexLockedError, match=f"being written by process {os.getpid()}"):
            WriteLock(path).acquire()
        held.pid_path.write_text(str(gone.pid))  # as a holder killed with kill -9 leaves it
        with pytest.raises(IndexLockedError, match="being written by another process"):
            WriteLock(path).acquire()
    assert not held.pid_path.exists()
    with WriteLock(path, wait=1.0):
        pass
