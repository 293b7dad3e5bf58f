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

WITHIN = 10.0  # seconds for a change to reach search; a pass takes well under that on a busy 2-core machine


def paths_for(folder: Path, query: str) -> list[str]:
    result = CliRunner().invoke(cli, ["search", query, "--index", str(folder), "--json", "--mode", "keyword"])
    assert result.exit_code == 0, result.output
    return [Path(h["path"]).name for h in json.loads(result.stdout)]


def eventually(check: Callable[[], bool], what: str, within: float = WITHIN) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if check():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"not within {within} s: {what}")


def settle(passes: list[WatchPass], quiet: float = 2.0) -> None:
    """Wait until the watcher has applied no batch for ``quiet`` seconds."""
    count, since = len(passes), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.1)
        if len(passes) != count:
            count, since = len(passes), time.monotonic()


@pytest.fixture
def watched(tmp_path: Path, embedder) -> Iterator[tuple[Path, Path, list[WatchPass]]]:  # type: ignore[no-untyped-def]
    docs, folder = tmp_path / "docs", tmp_path / "ix"
    docs.mkdir()
    (docs / "first.md").write_text("The greenhouse thermometer reads twenty degrees.")
    passes: list[WatchPass] = []
    stop = threading.Event()
    with Index.open(folder, create=True, embedder=embedder) as index:
        index.add([docs])
        thread = threading.Thread(target=watch, args=(index, [docs]), daemon=True, kwargs=dict(
            options=WatchOptions(debounce_seconds=0.5, poll_seconds=0.2), stop=stop, on_pass=passes.append))
        thread.start()
        time.sleep(0.5)
        try:
            yield docs, folder, passes
        finally:
            stop.set()
            thread.join(timeout=30)
    assert not thread.is_alive()


def test_add_edit_rename_delete_reach_search_without_duplicates(watched) -> None:  # type: ignore[no-untyped-def]
    docs, folder, passes = watched
    (docs / "second.txt").write_text("Feed the axolotl twice a week.")
    eventually(lambda: paths_for(folder, "axolotl") == ["second.txt"], "added file found")

    (docs / "second.txt").write_text("Feed the axolotl on Mondays only, with bloodworms.")
    eventually(lambda: paths_for(folder, "bloodworms") == ["second.txt"], "edited file found")

    settle(passes)  # a rename that lands while a pass is scanning is applied as delete + add
    (docs / "second.txt").rename(docs / "pets.txt")
    eventually(lambda: paths_for(folder, "axolotl") == ["pets.txt"], "renamed file found under its new name")
    assert any(Path(new).name == "pets.txt" for p in passes for _, new in p.renamed)  # a rename, not delete+add

    (docs / ".~lock.pets.txt#").write_text("lock")  # LibreOffice's lock file: no pass
    (docs / "first.md").unlink()
    eventually(lambda: paths_for(folder, "greenhouse thermometer") == [], "deleted file gone")

    with Index.open(folder) as index:
        rows = index.store.db.execute("SELECT d.path, c.text FROM chunks c JOIN documents d ON d.id = c.document_id")
        texts = [(Path(p).name, t) for p, t in rows]
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


@pytest.mark.skipif(sys.platform == "win32", reason="send_signal(SIGINT) raises ValueError on Windows; Ctrl-C "
                    "there is the console's CTRL_C_EVENT, which a child only gets in the same console")
def test_rt_index_watch_applies_changes_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    docs, folder = tmp_path / "docs", tmp_path / "ix"
    docs.mkdir()
    (docs / "a.md").write_text("The attic window latch is broken.")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = subprocess.Popen([sys.executable, "-c", "from runtime.cli import main; main()", "index", str(docs),
                            "--index", str(folder), "--watch", "--no-progress"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           cwd=Path(__file__).resolve().parents[2])
    err_lines: list[str] = []
    stderr = run.stderr
    assert stderr is not None
    reader = threading.Thread(target=lambda: err_lines.extend(iter(stderr.readline, "")), daemon=True)
    reader.start()
    try:
        eventually(lambda: run.poll() is not None or (folder / "index.sqlite").exists(), "index created", 60)
        eventually(lambda: run.poll() is not None or paths_for(folder, "attic latch") == ["a.md"], "first pass", 60)
        assert run.poll() is None, run.communicate()
        eventually(lambda: "watching" in "".join(err_lines), "watch started", 60)
        (docs / "b.md").write_text("The cellar pump switches on at forty centimetres.")
        eventually(lambda: paths_for(folder, "cellar pump") == ["b.md"], "file added while watching")
    finally:
        run.send_signal(signal.SIGINT)
        # Only the reader thread reads stderr: communicate() would race it for the last lines.
        run.wait(timeout=60)
        reader.join(timeout=10)
        out = run.stdout.read() if run.stdout else ""
    err = "".join(err_lines)
    assert run.returncode == 0, err
    assert "watching 1 path(s)" in err and "stopped watching; the index is committed" in err
    assert "1 added" in out
