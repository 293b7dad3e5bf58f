"""The PostgreSQL + pgvector store on a real PostgreSQL 18 server (tests/postgres.py): push without
re-embedding, server errors as one line, a restart mid-query, writers and readers at once, kill -9."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from runtime.cli import cli
from runtime.errors import IndexMismatchError, IndexNotFoundError, IndexServerError
from runtime.index import Index, IndexOptions
from runtime.index.stores.postgres import PostgresStore
from tests.hashing_embedder import HashingEmbedder

pytest.importorskip("psycopg")
REPO = Path(__file__).resolve().parents[2]


def rt(*args: str) -> object:
    return CliRunner().invoke(cli, list(args))


def write_notes(folder: Path, n: int, words: int = 60) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = " ".join(f"note{i} topic{i % 7} word{j} about bicycles lease and kettles." for j in range(words))
        (folder / f"note{i:03d}.txt").write_text(f"Note {i}\n\n{body}\n")
    return folder


def all_vectors(location: str | Path) -> dict[tuple[str, str], bytes]:
    """``(path, chunk text) -> vector bytes`` of every chunk of an index."""
    out = {}
    with Index.open(location) as index:
        store = index.store
        with store.transaction(write=False):
            for path, (doc_id, _) in store.documents().items():
                for chunk, vector in store.document_chunks(doc_id):
                    out[(path, chunk.text)] = vector
    return out


def test_push_copies_vectors_without_embedding_and_only_what_changed(tmp_path: Path, pg_url: str) -> None:
    docs = write_notes(tmp_path / "docs", 12)
    folder = tmp_path / "local"
    with Index.open(folder, create=True, embedder=HashingEmbedder()) as index:
        index.add([docs])
    # The source was embedded with a model no loader knows: any embedding during push would fail.
    first = rt("index", "push", str(folder), "--to", pg_url, "--json")
    assert first.exit_code == 0, first.output  # type: ignore[attr-defined]
    report = json.loads(first.output)  # type: ignore[attr-defined]
    assert len(report["copied"]) == 12 and report["chunks"] > 12 and report["chunks_per_second"] > 0
    assert all_vectors(pg_url) == all_vectors(folder)

    again = json.loads(rt("index", "push", str(folder), "--to", pg_url, "--json").output)  # type: ignore[attr-defined]
    assert again["copied"] == [] and again["unchanged"] == 12 and again["chunks"] == 0

    (docs / "note003.txt").write_text("Note 3 now speaks of descaling the kettle with citric acid.\n")
    (docs / "note004.txt").unlink()
    with Index.open(folder, embedder=HashingEmbedder()) as index:
        index.refresh()
    third = json.loads(rt("index", "push", str(folder), "--to", pg_url, "--json").output)  # type: ignore[attr-defined]
    assert [Path(p).name for p in third["copied"]] == ["note003.txt"]
    assert [Path(p).name for p in third["removed"]] == ["note004.txt"]
    assert third["unchanged"] == 10

    back = tmp_path / "back"
    result = rt("index", "push", pg_url, "--to", str(back))
    assert result.exit_code == 0 and "chunks/s" in result.output, result.output  # type: ignore[attr-defined]
    assert all_vectors(back) == all_vectors(folder)
    with Index.open(folder, embedder=HashingEmbedder()) as a, Index.open(back, embedder=HashingEmbedder()) as b, \
            Index.open(pg_url, embedder=HashingEmbedder()) as c:
        for query in ("descaling the kettle", "note7 topic0", "bicycles lease"):
            expected = [(h.path, h.text) for h in a.search(query, 5)]
            assert [(h.path, h.text) for h in b.search(query, 5)] == expected
            assert [(h.path, h.text) for h in c.search(query, 5)] == expected


def test_a_different_embedder_is_refused_and_a_missing_index_is_named(tmp_path: Path, pg_url: str) -> None:
    with pytest.raises(IndexNotFoundError, match="no rt index in postgresql://"):
        Index.open(pg_url)
    with Index.open(pg_url, create=True, embedder=HashingEmbedder()) as index:
        index.add([write_notes(tmp_path / "docs", 2)])
    with pytest.raises(IndexMismatchError, match="built with embedding model hashing-test-embedder"):
        Index.open(pg_url, embedder=HashingEmbedder(name="another-embedder"))
    with Index.open(pg_url, embedder=HashingEmbedder(dimension=16)) as index:
        index.embedder = HashingEmbedder(dimension=16)
        with pytest.raises(IndexMismatchError, match="16-dimensional"):
            index.embedder = HashingEmbedder(dimension=32)
    result = rt("search", "x", "--index", pg_url, "--embedding-model", "all-MiniLM-L6-v2")
    assert result.exit_code != 0 and "built with embedding model" in result.output  # type: ignore[attr-defined]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_problems_are_one_line_without_credentials(pg_server, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    down = f"postgresql://alice:s3cret@127.0.0.1:{_free_port()}/notes"
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        mute = f"postgresql://alice:s3cret@127.0.0.1:{silent.getsockname()[1]}/notes?connect_timeout=1"
        cases = [(down, "is down"), (mute, "did not answer"),
                 (pg_server.uri("no_such_db").replace("postgres@", "postgres:s3cret@"), "no such database")]
        for url, expected in cases:
            result = rt("search", "anything", "--index", url)
            output = result.output  # type: ignore[attr-defined]
            assert result.exit_code != 0 and expected in output, output  # type: ignore[attr-defined]
            assert "s3cret" not in output and "alice" not in output
            assert len(output.strip().splitlines()) == 1, output
            with pytest.raises(IndexServerError):
                Index.open(url)
    finally:
        silent.close()


def test_a_role_that_may_not_enable_pgvector_is_told_what_to_ask(pg_server, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    with psycopg.connect(pg_server.uri(), autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS rt_plain")
        admin.execute("CREATE ROLE rt_plain LOGIN")
        admin.execute("CREATE DATABASE rt_plain_db")
    try:
        url = pg_server.uri("rt_plain_db").replace("postgres@", "rt_plain@")
        with pytest.raises(IndexServerError, match="not enabled .* may not enable it .*; ask the database owner"):
            Index.open(url, create=True, embedder=HashingEmbedder())
    finally:
        with psycopg.connect(pg_server.uri(), autocommit=True) as admin:
            admin.execute("DROP DATABASE rt_plain_db WITH (FORCE)")
            admin.execute("DROP ROLE rt_plain")


def test_a_search_in_flight_when_the_server_restarts_is_retried_once(
        pg_server, pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    with Index.open(pg_url, create=True, embedder=HashingEmbedder()) as index:
        index.add([write_notes(tmp_path / "docs", 5)])
        before = [h.chunk_id for h in index.search("note3 bicycles", 3)]
        pg_server.restart(tcp=True)  # cuts every connection; afterwards it also listens on 127.0.0.1
        with caplog.at_level(logging.WARNING, logger="runtime.index.stores.postgres"):
            assert [h.chunk_id for h in index.search("note3 bicycles", 3)] == before
        assert "reconnecting and retrying once" in caplog.text
    tcp = pg_server.uri(pg_url.split("?")[0].rsplit("/", 1)[-1], tcp=True)
    assert tcp.startswith("postgresql://postgres@127.0.0.1:")
    with Index.open(tcp, embedder=HashingEmbedder()) as remote:
        assert [h.chunk_id for h in remote.search("note3 bicycles", 3)] == before
        assert remote.stats().documents == 5


def test_a_writer_and_readers_at_once_never_see_half_a_file(pg_url: str, tmp_path: Path) -> None:
    docs = write_notes(tmp_path / "docs", 24, words=120)
    options = IndexOptions(commit_chunks=8)
    with Index.open(pg_url, create=True, embedder=HashingEmbedder(), options=options):
        pass
    seen: list[dict[str, int]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            with Index.open(pg_url, embedder=HashingEmbedder()) as reader:
                while not done.is_set():
                    seen.append({p: len(ids) for p, ids in reader.chunk_ids_by_document().items()})
                    reader.search("topic3 kettles", 5)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        with Index.open(pg_url, embedder=HashingEmbedder(), options=options) as writer:
            writer.add([docs])
    finally:
        done.set()
        for thread in readers:
            thread.join(timeout=120)
    assert not errors, errors
    with Index.open(pg_url, embedder=HashingEmbedder()) as index:
        final = {p: len(ids) for p, ids in index.chunk_ids_by_document().items()}
    assert len(final) == 24 and len(seen) > 3
    for snapshot in seen:  # every file a reader saw had all of its chunks
        assert all(final[path] == n for path, n in snapshot.items()), snapshot


@pytest.mark.slow  # 300 files written twice; the fast path keeps the folder store's kill -9 test (test_crash)
def test_kill_9_of_a_writer_loses_nothing_committed(pg_url: str, tmp_path: Path) -> None:
    docs = write_notes(tmp_path / "docs", 300, words=120)
    script = textwrap.dedent(f"""
        from runtime.index import Index, IndexOptions
        from tests.hashing_embedder import HashingEmbedder
        with Index.open({pg_url!r}, create=True, embedder=HashingEmbedder(),
                        options=IndexOptions(commit_chunks=4)) as index:
            index.add([{str(docs)!r}])
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 240
        committed = 0
        while time.monotonic() < deadline and child.poll() is None:
            try:
                with Index.open(pg_url) as index:
                    committed = index.stats().documents
            except (IndexNotFoundError, IndexServerError):
                committed = 0
            if committed >= 5:
                break
            time.sleep(0.05)
        assert child.poll() is None, "the writer finished before it could be killed"
        child.kill()  # SIGKILL
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    with Index.open(pg_url, embedder=HashingEmbedder()) as index:
        kept = index.store.document_records()
        by_document = index.chunk_ids_by_document()
        assert len(kept) >= committed >= 5 and len(kept) < 300
        assert set(by_document) <= set(kept)  # no half-named (temporary) document among them
        for path, record in kept.items():
            assert Path(path).read_bytes() and record.size == Path(path).stat().st_size
        report = index.add([docs])
    assert report.unchanged == len(kept) and len(report.added) == 300 - len(kept)


def test_cli_index_and_json_show_the_url_without_its_password(tmp_path: Path, pg_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    url = pg_url.replace("postgres@", "postgres:s3cret-pw@")
    docs = write_notes(tmp_path / "docs", 2)
    folder = tmp_path / "local"
    with Index.open(folder, create=True, embedder=HashingEmbedder()) as index:
        index.add([docs])
    pushed = rt("index", "push", str(folder), "--to", url, "--json")
    assert pushed.exit_code == 0 and "s3cret" not in pushed.output, pushed.output  # type: ignore[attr-defined]
    assert json.loads(pushed.output)["target"].startswith("postgresql://***@")  # type: ignore[attr-defined]
    monkeypatch.setenv("RT_INDEX", url)
    search = rt("search", "note1 bicycles", "--mode", "keyword", "--json", "-k", "1")
    assert search.exit_code == 0, search.output  # type: ignore[attr-defined]
    assert json.loads(search.output)[0]["path"].endswith("note001.txt")  # type: ignore[attr-defined]
    with Index.open(url) as index:
        stats = index.stats()
        assert "s3cret" not in stats.location and "s3cret" not in repr(stats)
        assert np.isclose(sum(1 for _ in stats.roots), 1)


def test_both_stores_find_the_same_passages_for_the_same_chunks(corpus_index: Path, corpus_dir: Path,
                                                                 pg_url: str, embedder) -> None:  # type: ignore[no-untyped-def]
    from runtime.index.push import push
    from tests.index.corpus import QUESTIONS

    push(corpus_index, pg_url)  # the same chunks and vectors in both
    hits: dict[str, dict[int, float]] = {}
    for name, location in (("folder", str(corpus_index)), ("postgresql", pg_url)):
        with Index.open(location, embedder=embedder) as index:
            ranks = []
            for question, relative, passage in QUESTIONS:
                found = index.search(question, 10)
                target = str(corpus_dir / relative)
                ranks.append(next((r for r, h in enumerate(found, 1) if h.path == target and passage in h.text), None))
        hits[name] = {k: sum(r is not None and r <= k for r in ranks) / len(ranks) for k in (1, 5, 10)}
    print(hits)
    for k in (1, 5, 10):
        assert abs(hits["folder"][k] - hits["postgresql"][k]) <= 0.01, hits


def test_rt_index_builds_refreshes_and_removes_in_a_database(tmp_path: Path, pg_url: str) -> None:
    docs = write_notes(tmp_path / "docs", 3)
    first = rt("index", str(docs), "--index", pg_url, "--json", "--no-progress")
    assert first.exit_code == 0, first.output  # type: ignore[attr-defined]
    report = json.loads(first.output)  # type: ignore[attr-defined]
    assert len(report["added"]) == 3 and report["documents"] == 3 and report["index"].startswith("postgresql://")
    (docs / "note001.txt").unlink()
    refreshed = json.loads(rt("index", "--index", pg_url, "--json", "--no-progress").output)  # type: ignore[attr-defined]
    assert [Path(p).name for p in refreshed["removed"]] == ["note001.txt"] and refreshed["documents"] == 2
    removed = rt("index", "--index", pg_url, "--remove", str(docs / "note002.txt"))
    assert removed.exit_code == 0 and "removed 1 file(s)" in removed.output  # type: ignore[attr-defined]
    assert "push SOURCE --to" in rt("index", "--help").output  # type: ignore[attr-defined]
    assert "--to" in rt("index", "push", "--help").output  # type: ignore[attr-defined]


class PausingEmbedder(HashingEmbedder):
    """Hashes as its parent, but the first embedding of a batch waits until ``go`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding, self.go = threading.Event(), threading.Event()

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.embedding.set()
        assert self.go.wait(timeout=300)
        return super().embed(texts)


@contextmanager
def paused_rebuild(pg_url: str, folder: Path) -> Iterator[None]:
    """A rebuild of ``pg_url`` from ``folder`` in a thread, held at its first embedding while the
    body runs, then let finish; its errors are raised after."""
    pausing = PausingEmbedder()
    errors: list[BaseException] = []

    def rebuild() -> None:
        try:
            with Index.open(pg_url, rebuild=True, embedder=pausing) as index:
                index.add([folder])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=rebuild)
    thread.start()
    try:
        assert pausing.embedding.wait(timeout=120), errors
        yield
    finally:
        pausing.go.set()
        thread.join(timeout=300)
    assert not errors, errors


def staged_chunks(pg_url: str) -> int:
    """Chunks a rebuild has committed so far into its staging schema (0 if there is none)."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('rt_rebuild.chunks') IS NOT NULL").fetchone()
        if exists is None or not exists[0]:
            return 0
        count = conn.execute("SELECT count(*) FROM rt_rebuild.chunks").fetchone()
        return int(count[0]) if count else 0


def test_readers_see_the_old_index_until_a_rebuild_switches(pg_url: str, tmp_path: Path) -> None:
    old = write_notes(tmp_path / "old", 4)
    new = tmp_path / "new"
    new.mkdir()
    for i in range(3):
        (new / f"teapot{i}.txt").write_text(f"Teapot {i}\n\nporcelain teapots and saucers, number {i}.\n")
    with Index.open(pg_url, create=True, embedder=HashingEmbedder()) as index:
        index.add([old])
    with paused_rebuild(pg_url, new), Index.open(pg_url, embedder=HashingEmbedder()) as reader:
        # mid-rebuild: the old index, whole
        assert reader.stats().documents == 4
        assert [Path(h.path).name for h in reader.search("note2 kettles", 1, mode="keyword")] == ["note002.txt"]
        assert reader.search("porcelain teapots", 3, mode="keyword") == []
    with Index.open(pg_url, embedder=HashingEmbedder()) as index:
        assert index.stats().documents == 3 and index.stats().roots == (str(new.resolve()),)
        assert Path(index.search("porcelain teapots", 1, mode="keyword")[0].path).parent == new.resolve()
        assert index.search("kettles", 3, mode="keyword") == []
    assert staged_chunks(pg_url) == 0


@pytest.mark.slow  # the fast path keeps kill -9 of a writer and the staged rebuild's readers (35-53 s loaded)
def test_kill_9_of_rt_index_rebuild_leaves_the_old_index_whole(pg_url: str, tmp_path: Path,
                                                                minilm_path: Path) -> None:
    import sysconfig

    old = write_notes(tmp_path / "old", 5)
    with Index.open(pg_url, create=True, embedder=HashingEmbedder()) as index:
        index.add([old])
        before = [h.chunk_id for h in index.search("note3 bicycles", 3)]
    new = write_notes(tmp_path / "new", 300, words=120)
    rt_script = Path(sysconfig.get_path("scripts")) / "rt"
    child = subprocess.Popen([str(rt_script), "index", str(new), "--rebuild", "--index", pg_url, "--no-progress",
                              "--embedding-model", str(minilm_path)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None and staged_chunks(pg_url) < 8:
            time.sleep(0.05)
        assert child.poll() is None, "the rebuild finished (or failed) before it could be killed"
        assert staged_chunks(pg_url) >= 8
        child.kill()  # SIGKILL
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    with Index.open(pg_url, embedder=HashingEmbedder()) as index:  # the old index, as it was
        assert index.stats().documents == 5 and index.stats().embedding_model == "hashing-test-embedder"
        assert [h.chunk_id for h in index.search("note3 bicycles", 3)] == before
    small = write_notes(tmp_path / "small", 2)
    with Index.open(pg_url, rebuild=True, embedder=HashingEmbedder()) as index:  # drops the leftover
        index.add([small])
    with Index.open(pg_url, embedder=HashingEmbedder()) as index:
        assert index.stats().documents == 2
    assert staged_chunks(pg_url) == 0


def _unnested_chunks(plan: object) -> int:
    """How many chunks' tsvectors a keyword query's plan unnested (the loops of ``unnest(k.tsv) u``)."""
    if isinstance(plan, list):
        return sum(_unnested_chunks(p) for p in plan)
    if not isinstance(plan, dict):
        return 0
    own = int(plan.get("Actual Loops", 0)) if plan.get("Alias") == "u" else 0
    return own + sum(_unnested_chunks(v) for v in plan.values() if isinstance(v, (list, dict)))


def _plan_nodes(plan: object) -> list[dict]:  # type: ignore[type-arg]
    """Every node of an EXPLAIN (FORMAT JSON) plan."""
    if isinstance(plan, list):
        return [n for p in plan for n in _plan_nodes(p)]
    if not isinstance(plan, dict):
        return []
    own = [plan] if "Node Type" in plan else []
    return own + [n for v in plan.values() if isinstance(v, (list, dict)) for n in _plan_nodes(v)]


def test_keyword_search_reads_term_frequencies_of_its_candidates_only(pg_url: str, tmp_path: Path) -> None:
    from runtime.index.stores.postgres_terms import _BM25, KEYWORD_CANDIDATES

    docs = write_notes(tmp_path / "docs", 120, words=120)  # every chunk holds "kettles" and "bicycles"
    folder = tmp_path / "local"
    with Index.open(folder, create=True, embedder=HashingEmbedder()) as index:
        index.add([docs])
        local = [(Path(h.path).name, h.text) for h in index.search("note7 kettles bicycles", 5, mode="keyword")]
    from runtime.index.push import push

    push(folder, pg_url)
    with Index.open(pg_url, embedder=HashingEmbedder()) as index:
        store = index.store
        assert isinstance(store, PostgresStore)
        chunks = store.counts()[1]
        assert chunks > 2 * KEYWORD_CANDIDATES and store.chunks_matching("kettles") == chunks
        params = {"words": "note7 kettles bicycles", "limit": 5, "candidates": KEYWORD_CANDIDATES}
        plan = store._rows("EXPLAIN (ANALYZE, FORMAT JSON) " + _BM25, params)[0][0]
        assert 0 < _unnested_chunks(plan) <= KEYWORD_CANDIDATES
        nodes = _plan_nodes(plan)
        # the candidates are fetched by key, not by a pass over every chunk (the hash join that
        # took a quarter of the query at 10k chunks), and each yields the query's words only
        assert not [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "chunks"]
        emitted = sum(n["Actual Rows"] * n["Actual Loops"] for n in nodes if n.get("Alias") == "u")
        assert 0 < emitted <= 3 * _unnested_chunks(plan)  # 3 query words
        found = [(Path(h.path).name, h.text) for h in index.search("note7 kettles bicycles", 5, mode="keyword")]
    assert found == local  # the same passages, in the same order, as FTS5's BM25 over every chunk


def test_an_index_from_before_the_token_totals_gets_them_on_open(pg_url: str, tmp_path: Path) -> None:
    import psycopg

    docs = write_notes(tmp_path / "docs", 6)
    with Index.open(pg_url, create=True, embedder=HashingEmbedder()) as index:
        index.add([docs])
        before = index.store.keyword_search("note3 kettles", 10)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # as schema version 1 left it
        conn.execute("ALTER TABLE rt.documents DROP COLUMN n_tokens")
        conn.execute("DELETE FROM rt.migrations WHERE version = 2")
    with Index.open(pg_url, create=True, embedder=HashingEmbedder()) as index:
        assert isinstance(index.store, PostgresStore)
        totals = index.store._rows("SELECT sum(n_tokens), (SELECT sum(n_tokens) FROM rt.chunks) FROM rt.documents")
        assert totals[0][0] == totals[0][1] > 0
        after = index.store.keyword_search("note3 kettles", 10)
    assert [i for i, _ in after] == [i for i, _ in before]
    assert np.allclose([s for _, s in after], [s for _, s in before])


def _other_machine(pg_url: str, folder: Path, home: Path, wait: float) -> subprocess.Popen[str]:
    """A writer of ``folder`` into the database as another machine would be: its own process and
    its own RT_HOME (so not the local writer lock of this machine's processes)."""
    script = textwrap.dedent(f"""
        import logging, sys
        from runtime.errors import RtError
        from runtime.index import Index
        from tests.hashing_embedder import HashingEmbedder
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
        try:
            with Index.open({pg_url!r}, embedder=HashingEmbedder(), wait={wait!r}) as index:
                print(len(index.add([{str(folder)!r}]).added))
        except RtError as exc:
            print(f"{{type(exc).__name__}}: {{exc}}", file=sys.stderr)
            sys.exit(3)
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO), RT_HOME=str(home))
    return subprocess.Popen([sys.executable, "-c", script], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _waiting_for_advisory_lock(pg_url: str) -> bool:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()
        return bool(row and row[0])


def test_a_write_from_another_machine_during_a_rebuild_lands_in_the_rebuilt_index(pg_url: str,
                                                                                   tmp_path: Path) -> None:
    old = write_notes(tmp_path / "old", 3)
    new = tmp_path / "new"
    new.mkdir()
    (new / "teapot.txt").write_text("Teapot\n\nporcelain teapots and saucers.\n")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "kettle.txt").write_text("Kettle\n\ndescaling the copper kettle with citric acid.\n")
    with Index.open(pg_url, create=True, embedder=HashingEmbedder()) as index:
        index.add([old])
    with paused_rebuild(pg_url, new):
        refused = _other_machine(pg_url, extra, tmp_path / "home-b", wait=0)
        out, err = refused.communicate(timeout=120)
        assert refused.returncode == 3 and "IndexLockedError" in err and "being rebuilt" in err, (out, err)
        assert "--wait SECONDS" in err

        waiting = _other_machine(pg_url, extra, tmp_path / "home-c", wait=300)
        deadline = time.monotonic() + 120
        while not _waiting_for_advisory_lock(pg_url) and waiting.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting.poll() is None, waiting.communicate()
        assert _waiting_for_advisory_lock(pg_url)
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0 and out.strip() == "1", (out, err)
    assert "being rebuilt" in err and "waiting up to 300 s" in err
    with Index.open(pg_url, embedder=HashingEmbedder()) as index:  # the rebuild's file and the waiting writer's
        assert sorted(Path(p).name for p in index.chunk_ids_by_document()) == ["kettle.txt", "teapot.txt"]
        assert Path(index.search("copper kettle", 1, mode="keyword")[0].path).name == "kettle.txt"


def test_a_writer_that_waited_for_a_rebuild_with_another_embedder_is_refused(pg_url: str, tmp_path: Path) -> None:
    with Index.open(pg_url, create=True, embedder=HashingEmbedder()) as index:
        index.add([write_notes(tmp_path / "old", 2)])
    writer = Index.open(pg_url, embedder=HashingEmbedder())  # opened before the rebuild
    try:
        with Index.open(pg_url, rebuild=True, embedder=HashingEmbedder(name="another-embedder")) as rebuilt:
            rebuilt.add([write_notes(tmp_path / "new", 2)])
        with pytest.raises(IndexMismatchError, match="was rebuilt .*another-embedder.* after it was opened here"):
            writer.add([write_notes(tmp_path / "late", 1)])
    finally:
        writer.close()
    with Index.open(pg_url) as index:
        assert index.stats().embedding_model == "another-embedder" and index.stats().documents == 2


@pytest.mark.parametrize(("constant", "value", "expected"), [
    ("MIN_SERVER", (19, 0), r"PostgreSQL server at postgresql://\S+ is version 18\.\d+; rt needs 19\.0 or newer"),
    ("MIN_PGVECTOR", (0, 8, 7), r"pgvector extension in postgresql://\S+ is version 0\.8\.\d+; rt needs 0\.8\.7"),
    ("EXTENSION", "rt_no_such_extension", r"has no pgvector extension \('rt_no_such_extension'\)"),
])
def test_a_server_too_old_or_without_pgvector_is_one_line_naming_which(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, constant: str, value: object,
        expected: str) -> None:
    import re

    from runtime.index.stores import postgres_schema

    # the real server's reported versions against a minimum above them (PostgreSQL 18.6, pgvector 0.8.6)
    monkeypatch.setattr(postgres_schema, constant, value)
    result = rt("index", str(write_notes(tmp_path / "docs", 1)), "--index", pg_url, "--no-progress")
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code != 0 and re.search(expected, output), output  # type: ignore[attr-defined]
    assert len(output.strip().splitlines()) == 1, output
    with pytest.raises(IndexServerError, match=expected):
        Index.open(pg_url, create=True, embedder=HashingEmbedder())


def test_an_unknown_host_is_one_line_saying_so() -> None:
    result = rt("search", "anything", "--index", "postgresql://alice:s3cret@no-such-host.invalid:5432/notes")
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code != 0 and "is unreachable: unknown host name" in output, output  # type: ignore[attr-defined]
    assert "s3cret" not in output and "alice" not in output and len(output.strip().splitlines()) == 1


def test_a_host_name_windows_cannot_resolve_is_named_as_such() -> None:
    import psycopg

    from runtime.index.stores.postgres import connection_error

    # psycopg resolves names itself; on Windows the resolver's words are WinSock's (imitated here)
    failed = psycopg.OperationalError("failed to resolve host 'db.example': [Errno 11001] getaddrinfo failed")
    assert "unreachable: unknown host name" in str(connection_error(failed, "postgresql://***@db.example/notes"))


def test_a_write_after_the_server_went_away_is_one_line(pg_server, pg_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    docs = write_notes(tmp_path / "docs", 1)
    with Index.open(pg_url, create=True, embedder=HashingEmbedder()) as index:
        pg_server.stop()
        try:
            with pytest.raises(IndexServerError, match="closed the connection|is down"):
                index.add([docs])
        finally:
            pg_server.start()
    with Index.open(pg_url, embedder=HashingEmbedder()) as index:  # back where it was: the next tests use it
        assert index.add([docs]).added


def test_a_rebuild_waits_for_writers_in_flight_on_other_machines(pg_url: str, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    import psycopg

    from runtime.errors import IndexLockedError
    from runtime.index.stores.postgres_locks import WRITE_LOCK

    with Index.open(pg_url, create=True, embedder=HashingEmbedder()) as index:
        index.add([write_notes(tmp_path / "old", 2)])
    new = write_notes(tmp_path / "new", 1)
    with psycopg.connect(pg_url, autocommit=True) as other:  # another machine's writer, mid-run
        other.execute("SELECT pg_advisory_lock_shared(%s)", (WRITE_LOCK,))
        with pytest.raises(IndexLockedError, match="being written from another machine"), \
                Index.open(pg_url, rebuild=True, embedder=HashingEmbedder()) as rebuilding:
            rebuilding.add([new])
        with caplog.at_level(logging.WARNING, logger="runtime.index.stores.postgres_locks"), \
                pytest.raises(IndexLockedError, match="still after 1 s"), \
                Index.open(pg_url, rebuild=True, embedder=HashingEmbedder(), wait=1) as rebuilding:
            rebuilding.add([new])
        assert "waiting up to 1 s" in caplog.text
    with Index.open(pg_url, embedder=HashingEmbedder()) as index:  # untouched by the refused rebuilds
        assert index.stats().documents == 2
    with Index.open(pg_url, rebuild=True, embedder=HashingEmbedder()) as rebuilding:  # the writer is gone
        rebuilding.add([new])
    with Index.open(pg_url, embedder=HashingEmbedder()) as index:
        assert [Path(p).name for p in index.chunk_ids_by_document()] == ["note000.txt"]
        assert Path(next(iter(index.chunk_ids_by_document()))).parent == new.resolve()
