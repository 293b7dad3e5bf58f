"""`rt index --watch`: adds, edits, renames and deletes under a watched folder reach `rt search`
within seconds, with no duplicate chunks; temp files are ignored; a folder that goes and comes
back is followed."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli
from runtime.index import Index
from runtime.index.config import WatchOptions
from runtime.index.watch import WatchPass, is_temp_file, watch
from tests.slow import slow_unless

WITHIN = 120.0  # seconds for a change to reach search: a pass takes about a second; generous for a loaded machine
# seconds for `rt index --watch` in a child to start, import torch, load MiniLM and make its first
# pass: about 10 s on an idle 2-core machine, over 60 s at a load average of 20
STARTUP = 300.0


def paths_for(folder: Path | str, query: str) -> list[str]:
    result = CliRunner().invoke(cli, ["search", query, "--index", str(folder), "--json", "--mode", "keyword"])
    assert result.exit_code == 0, result.output
    return [Path(h["path"]).name for h in json.loads(result.stdout)]


def applied(passes: list[WatchPass], since: int, kind: str, name: str) -> bool:
    """Whether a pass recorded after ``passes[since]`` reports ``name`` as ``kind`` (added,
    updated, renamed). A search can see a pass's commit before the watch has recorded that pass,
    so waiting on search alone races the count of passes."""
    for done in passes[since:]:
        if kind == "renamed":
            names = [Path(new).name for _, new in done.renamed]
        else:
            names = [Path(p).name for p in getattr(done.report, kind, [])] if done.report is not None else []
        if name in names:
            return True
    return False


def eventually(check: Callable[[], bool], what: str, within: float = WITHIN) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if check():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"not within {within} s: {what}")


@pytest.fixture
def watched(tmp_path: Path, embedder, index_location: str) -> Iterator[tuple[Path, str, list[WatchPass]]]:  # type: ignore[no-untyped-def]
    """A watch in a thread of this process over ``docs``, into an index in each store."""
    docs, folder = tmp_path / "docs", index_location
    docs.mkdir()
    (docs / "first.md").write_text("The greenhouse thermometer reads twenty degrees.")
    passes: list[WatchPass] = []
    stop = threading.Event()
    with Index.open(folder, create=True, embedder=embedder) as index:
        thread = threading.Thread(target=watch, args=(index, [docs]), daemon=True, kwargs=dict(
            options=WatchOptions(debounce_seconds=0.5, poll_seconds=0.2), stop=stop, on_pass=passes.append,
            first_pass=True))
        thread.start()
        try:
            eventually(lambda: bool(passes) or not thread.is_alive(), "first pass (the folder is watched)", 120)
            assert passes and passes[0].report is not None and len(passes[0].report.added) == 1
            yield docs, folder, passes
        finally:
            stop.set()
            thread.join(timeout=30)
    assert not thread.is_alive()


def test_add_edit_rename_delete_reach_search_without_duplicates(watched) -> None:  # type: ignore[no-untyped-def]
    docs, folder, passes = watched
    since = len(passes)
    (docs / "second.txt").write_text("Feed the axolotl twice a week.")
    eventually(lambda: applied(passes, since, "added", "second.txt"), "a pass adds the file")
    assert paths_for(folder, "axolotl") == ["second.txt"]

    since = len(passes)
    (docs / "second.txt").write_text("Feed the axolotl on Mondays only, with bloodworms.")
    eventually(lambda: applied(passes, since, "updated", "second.txt"), "a pass updates the file")
    assert paths_for(folder, "bloodworms") == ["second.txt"]

    since = len(passes)  # the edit's pass is recorded: every pass from here on follows the rename
    (docs / "second.txt").rename(docs / "pets.txt")
    # One rename event, or (on a busy machine) a delete and an add: either way a pass names the new file.
    eventually(lambda: applied(passes, since, "renamed", "pets.txt") or applied(passes, since, "added", "pets.txt"),
               "a pass applies the rename")
    assert paths_for(folder, "axolotl") == ["pets.txt"]
    # Either way the moved file keeps its vectors: nothing is embedded again.
    assert sum(p.report.chunks_embedded for p in passes[since:] if p.report is not None) == 0

    (docs / ".~lock.pets.txt#").write_text("lock")  # LibreOffice's lock file: no pass
    (docs / "first.md").unlink()
    eventually(lambda: paths_for(folder, "greenhouse thermometer") == [], "deleted file gone")

    with Index.open(folder) as index:
        by_document = index.chunk_ids_by_document()
        rows = index.chunks([i for ids in by_document.values() for i in ids])
        texts = [(Path(p).name, rows[i].text) for p, ids in by_document.items() for i in ids]
    assert texts == [("pets.txt", "Feed the axolotl on Mondays only, with bloodworms.")]


def test_a_folder_that_disappears_and_comes_back_is_followed(watched, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    docs, folder, _ = watched
    (docs / "sub").mkdir()
    (docs / "sub" / "note.txt").write_text("The bicycle lock code is in the blue notebook.")
    eventually(lambda: paths_for(folder, "bicycle lock code") == ["note.txt"], "file in a new subfolder found")
    shutil.move(str(docs), str(tmp_path / "away"))
    eventually(lambda: paths_for(folder, "bicycle lock code") == [], "vanished folder dropped")
    shutil.move(str(tmp_path / "away"), str(docs))
    eventually(lambda: paths_for(folder, "bicycle lock code") == ["note.txt"], "folder back and indexed again")


def test_editor_temp_and_lock_files_are_recognised() -> None:
    for name in (".~lock.report.odt#", "~$budget.xlsx", "notes.md.swp", "notes.md~", "4913", ".#notes.md",
                 "#notes.md#", "video.mp4.part"):
        assert is_temp_file(name), name
    assert not is_temp_file("notes.md") and not is_temp_file("report.docx")


NEEDS_SIGINT = pytest.mark.skipif(
    sys.platform == "win32", reason="send_signal(SIGINT) raises ValueError on Windows; Ctrl-C there is the "
    "console's CTRL_C_EVENT, which a child only gets in the same console")


class _WatchRun:
    """``rt index DOCS --index FOLDER --watch [flags]`` in a child, its stdout and stderr read line by
    line on threads (so nothing races them for the last lines); :meth:`stop` sends Ctrl-C."""

    def __init__(self, docs: Path, folder: Path | str, *flags: str) -> None:
        import os
        import subprocess

        self.run = subprocess.Popen([sys.executable, "-c", "from runtime.cli import main; main()", "index",
                                     str(docs), "--index", str(folder), "--watch", *flags, "--no-progress"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                    cwd=Path(__file__).resolve().parents[2])
        self.out_lines: list[str] = []
        self.err_lines: list[str] = []
        stdout, stderr = self.run.stdout, self.run.stderr
        assert stdout is not None and stderr is not None
        self.readers = [threading.Thread(target=lambda: self.out_lines.extend(iter(stdout.readline, "")), daemon=True),
                        threading.Thread(target=lambda: self.err_lines.extend(iter(stderr.readline, "")), daemon=True)]
        for reader in self.readers:
            reader.start()

    @property
    def err(self) -> str:
        return "".join(self.err_lines)

    def stop(self) -> int:
        import signal
        import subprocess

        self.run.send_signal(signal.SIGINT)
        try:
            self.run.wait(timeout=WITHIN)
        except subprocess.TimeoutExpired:  # never leave a watching child behind a failed test
            self.run.kill()
            self.run.wait()
            raise
        for reader in self.readers:
            reader.join(timeout=10)
        return self.run.returncode


@NEEDS_SIGINT
@pytest.mark.parametrize("store", slow_unless(["folder", "postgresql"], "folder"), indirect=True)
def test_rt_index_watch_applies_changes_and_stops_cleanly_on_ctrl_c(tmp_path: Path, index_location: str) -> None:
    docs, folder = tmp_path / "docs", index_location
    docs.mkdir()
    (docs / "a.md").write_text("The attic window latch is broken.")
    watching = _WatchRun(docs, folder)
    run = watching.run
    try:
        # "watching" is printed once the first pass is committed. Searching before that raced the
        # child creating the index: under load a search found index.sqlite without its tables yet.
        eventually(lambda: run.poll() is not None or "watching" in watching.err, "first pass, then watching", STARTUP)
        assert run.poll() is None, watching.err
        assert paths_for(folder, "attic latch") == ["a.md"]
        (docs / "b.md").write_text("The cellar pump switches on at forty centimetres.")
        eventually(lambda: paths_for(folder, "cellar pump") == ["b.md"], "file added while watching")
    finally:
        returncode = watching.stop()
    err = watching.err
    assert returncode == 0, err
    assert "watching 1 path(s)" in err and "stopped watching; the index is committed" in err
    assert "1 added" in "".join(watching.out_lines)


def test_files_written_while_the_watch_starts_are_indexed(tmp_path: Path, embedder,  # type: ignore[no-untyped-def]
                                                          index_location: str) -> None:
    """A file written during the first pass (after its scan), one written as it ends, one after."""
    from tests.index.conftest import CountingEmbedder

    docs, folder = tmp_path / "docs", index_location
    docs.mkdir()
    (docs / "first.md").write_text("The greenhouse thermometer reads twenty degrees.")

    class WritesDuringThePass(CountingEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            if not (docs / "during.txt").exists():
                (docs / "during.txt").write_text("The compost heap is turned every second Sunday.")
            return super().embed(texts)

    passes: list[WatchPass] = []

    def on_pass(done: WatchPass) -> None:
        if not passes:
            (docs / "after.txt").write_text("The rain barrel overflows after a heavy storm.")
        passes.append(done)

    stop = threading.Event()
    with Index.open(folder, create=True, embedder=WritesDuringThePass(embedder)) as index:
        thread = threading.Thread(target=watch, args=(index, [docs]), daemon=True, kwargs=dict(
            options=WatchOptions(debounce_seconds=0.5, poll_seconds=0.2), stop=stop, on_pass=on_pass,
            first_pass=True))
        thread.start()
        try:
            eventually(lambda: bool(passes) or not thread.is_alive(), "first pass", 120)
            assert passes[0].report is not None and passes[0].report.added == [str(docs / "first.md")]
            (docs / "later.txt").write_text("The hedgehog sleeps under the woodpile in winter.")
            for query, name in (("compost heap", "during.txt"), ("rain barrel", "after.txt"),
                                ("hedgehog woodpile", "later.txt")):
                eventually(lambda: paths_for(folder, query) == [name], f"{name} indexed")
        finally:
            stop.set()
            thread.join(timeout=30)
    assert not thread.is_alive()


@NEEDS_SIGINT
@pytest.mark.slow
def test_rt_index_watch_json_prints_a_json_line_per_pass_and_keeps_watching(tmp_path: Path) -> None:
    docs, folder = tmp_path / "docs", tmp_path / "ix"
    docs.mkdir()
    (docs / "a.md").write_text("The attic window latch is broken.")
    watching = _WatchRun(docs, folder, "--json")
    run, out_lines = watching.run, watching.out_lines
    try:
        eventually(lambda: run.poll() is not None or "watching" in watching.err, "watching", STARTUP)
        assert run.poll() is None, watching.err  # it used to exit after the first pass
        first = json.loads(out_lines[0])
        assert first["added"] == [str(docs / "a.md")] and first["documents"] == 1
        (docs / "b.md").write_text("The cellar pump switches on at forty centimetres.")
        eventually(lambda: any(str(docs / "b.md") in json.loads(line).get("added", []) for line in out_lines[1:]),
                   "a JSON line for the added file")
    finally:
        returncode = watching.stop()
    assert returncode == 0, watching.err
    assert all(isinstance(json.loads(line), dict) for line in out_lines)  # JSON lines only on stdout
    assert "stopped watching; the index is committed" in watching.err
