"""rt's own process talks to pipes the way Windows makes it: never an "internal error".

Windows is imitated here: ``PYTHONIOENCODING=cp1252`` gives the real CLI, in a subprocess, the
ANSI code page Python on Windows uses for redirected stdin and stdout; the EINVAL that Windows
raises on writing into a closed pipe is raised by a stand-in stdout under a faked
``runtime.cli.on_windows``. Everything else is real: the index, MiniLM, the pipes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NAME = "Reise → 東京 🎉.md"
TEXT = "Die Übersicht: the train → 東京 leaves at 10:00 🎉, platform ß.\n"
RUN_RT = "from runtime.cli import main; main()"


def rt(*args: str, stdin: bytes = b"", cp1252: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"} if cp1252 else dict(os.environ)
    env.pop("PYTHONUTF8", None)
    return subprocess.run([sys.executable, "-c", RUN_RT, *args], cwd=REPO, input=stdin, capture_output=True,
                          env=env, timeout=timeout)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes]:
    """A one-file corpus with a non-ASCII name and text, indexed through a cp1252 pipe with --json."""
    root = tmp_path_factory.mktemp("windows-io")
    docs = root / "docs"
    docs.mkdir()
    (docs / NAME).write_text(TEXT, encoding="utf-8")
    folder = root / "索引 → ix"
    done = rt("index", str(docs), "--index", str(folder), "--no-progress", "--json")
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    return docs, folder, done.stdout


def test_index_json_keeps_non_ascii_file_names_through_a_cp1252_pipe(indexed: tuple[Path, Path, bytes]) -> None:
    docs, _, stdout = indexed
    assert str(docs / NAME).encode("utf-8") in stdout or json.dumps(str(docs / NAME)).encode("ascii") in stdout
    assert json.loads(stdout.decode("utf-8"))["added"] == [str(docs / NAME)]


def test_search_writes_utf8_through_a_cp1252_pipe(indexed: tuple[Path, Path, bytes]) -> None:
    docs, ix, _ = indexed
    plain = rt("search", "Übersicht", "--index", str(ix), "--mode", "keyword")
    assert plain.returncode == 0, plain.stderr.decode("utf-8", "replace")
    assert NAME.encode("utf-8") in plain.stdout
    assert "the train → 東京 leaves at 10:00 🎉".encode("utf-8") in plain.stdout
    assert b"internal error" not in plain.stderr

    as_json = rt("search", "Übersicht", "--index", str(ix), "--mode", "keyword", "--json")
    assert as_json.returncode == 0, as_json.stderr.decode("utf-8", "replace")
    hit = json.loads(as_json.stdout.decode("utf-8"))[0]
    assert hit["path"] == str(docs / NAME) and hit["text"] == TEXT.strip()
    assert TEXT.strip().encode("utf-8") in as_json.stdout  # byte-exact, not \\u escapes


def test_ask_json_writes_utf8_through_a_cp1252_pipe(indexed: tuple[Path, Path, bytes], smollm2_path: Path) -> None:
    _, ix, _ = indexed
    done = rt("ask", "Wann fährt der Zug → 東京?", "--index", str(ix), "--model", str(smollm2_path), "--json",
              "--answer-anyway", "--max-tokens", "8", "--threads", "1")
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    assert b"internal error" not in done.stderr
    answer = json.loads(done.stdout.decode("utf-8"))
    assert answer["index"] == str(ix) and str(ix).encode("utf-8") in done.stdout


@pytest.mark.parametrize("encoded", [
    pytest.param("\ufeff東京\n".encode("utf-8"), id="utf-8 with BOM (Notepad, Out-File -Encoding utf8)"),
    pytest.param("東京\r\n".encode("utf-8"), id="utf-8 with CRLF (PowerShell 7)"),
    pytest.param("\ufeff東京\r\n".encode("utf-16-le"), id="utf-16 (PowerShell 5.1 Out-File)"),
])
def test_stdin_queries_are_read_as_utf8_first(indexed: tuple[Path, Path, bytes], encoded: bytes) -> None:
    docs, ix, _ = indexed
    found = rt("search", "-", "--index", str(ix), "--mode", "keyword", "--json", stdin=encoded)
    assert found.returncode == 0, found.stderr.decode("utf-8", "replace")
    lines = found.stdout.decode("utf-8").splitlines()
    assert len(lines) == 1 and json.loads(lines[0])[0]["path"] == str(docs / NAME)


def test_stdin_that_is_not_utf8_falls_back_to_the_code_page(indexed: tuple[Path, Path, bytes]) -> None:
    docs, ix, _ = indexed
    found = rt("search", "-", "--index", str(ix), "--mode", "keyword", "--json", stdin="Übersicht\n".encode("cp1252"))
    assert found.returncode == 0, found.stderr.decode("utf-8", "replace")
    assert json.loads(found.stdout.decode("utf-8").splitlines()[0])[0]["path"] == str(docs / NAME)


def test_a_reader_that_closes_the_pipe_early_is_not_an_error(indexed: tuple[Path, Path, bytes]) -> None:
    _, ix, _ = indexed
    # Far more output than a pipe buffers (64 KiB), so rt is still writing when the reader leaves.
    queries = "Übersicht\n".encode("utf-8") * 3000
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    child = subprocess.Popen([sys.executable, "-c", RUN_RT, "search", "-", "--index", str(ix), "--mode", "keyword",
                              "--json"], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    child.stdin.write(queries)
    child.stdin.close()
    assert child.stdout.readline()  # like `| Select-Object -First 1`, `| head -1` or `| more` quitting
    child.stdout.close()
    stderr = child.stderr.read()
    assert child.wait(timeout=600) == 0, stderr.decode("utf-8", "replace")
    assert b"error" not in stderr and b"Exception ignored" not in stderr


def test_windows_einval_on_a_closed_pipe_is_not_an_error(smollm2_path: Path) -> None:
    """Windows raises OSError EINVAL, not BrokenPipeError, when the reader has closed the pipe."""
    code = f"""
import errno, io, sys
import runtime.cli
class ClosedPipe(io.TextIOWrapper):
    def write(self, text):
        raise OSError(errno.EINVAL, "Invalid argument")
    def flush(self):
        raise OSError(errno.EINVAL, "Invalid argument")
sys.stdout = ClosedPipe(io.BytesIO(), encoding="utf-8")
runtime.cli.on_windows = lambda: True
sys.argv = ["rt", "info", {str(smollm2_path)!r}, "--json"]
runtime.cli.main()
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    assert b"error" not in done.stderr and b"Exception ignored" not in done.stderr


def test_faulthandler_is_on_in_the_cli_process() -> None:
    code = ("import atexit, faulthandler, sys\n"
            "atexit.register(lambda: print('faulthandler', faulthandler.is_enabled(), file=sys.stderr))\n"
            "sys.argv = ['rt', '--version']\n"
            "from runtime.cli import main\nmain()\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=600)
    assert done.returncode == 0 and b"faulthandler True" in done.stderr, done.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_output_that_cannot_be_written_is_one_error_line_not_a_traceback() -> None:
    """`rt ... > out.txt` on a full disk: rt says so in one line and exits 1."""
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, "-c", RUN_RT, "--version"], cwd=REPO, stdout=full,
                              stderr=subprocess.PIPE, timeout=600)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.decode("utf-8").splitlines()
    assert len(lines) == 1 and lines[0].startswith("rt: error: ") and "No space left on device" in lines[0]
