"""`rt index` and `rt search` through the CLI: output, JSON, stdin queries, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from runtime.cli import cli

REPO = Path(__file__).resolve().parents[2]


def rt(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), input=input)


def test_index_reports_what_it_did_and_names_bad_files(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / ".obsidian").mkdir(parents=True)
    (docs / ".obsidian" / "workspace.json").write_text("{}")
    (docs / "rent.md").write_text("# Rent\n\nThe rent is due on the third working day.")
    (docs / "menu.txt").write_bytes("Crème brûlée costs 6 euros.".encode("cp1252"))
    (docs / "empty.txt").write_text("")
    (docs / "app.exe").write_bytes(b"MZ\x90\x00")
    (docs / "broken.txt").write_bytes(b"\x81\x8d\x8f\x90\x9d")
    folder = tmp_path / "ix"
    result = rt("index", str(docs), "--index", str(folder), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "2 added, 0 updated, 0 removed, 0 unchanged, 4 skipped" in result.output
    assert "1 binary, 1 empty, 1 hidden, 1 unreadable" in result.output
    assert f"rt: skipped {docs / 'broken.txt'}: not UTF-8" in result.output
    assert "2 chunks embedded" in result.output and "all-MiniLM-L6-v2" in result.output

    (docs / "rent.md").unlink()
    again = rt("index", "--index", str(folder), "--no-progress", "--json")  # no PATHS: refresh
    report = json.loads(again.stdout)
    assert report["removed"] == [str(docs / "rent.md")] and report["unchanged"] == 2
    assert report["problems"][0]["path"].endswith("broken.txt") and report["chunks_embedded"] == 0

    keyword = rt("search", "brûlée", "--index", str(folder), "--mode", "keyword")
    assert keyword.exit_code == 0 and "menu.txt" in keyword.output and "Crème brûlée" in keyword.output

    changed = rt("index", str(docs), "--index", str(folder), "--chunk-tokens", "100")
    assert changed.exit_code == 1 and "built with --chunk-tokens 200, not 100" in changed.output
    assert "--rebuild" in changed.output


def test_search_json_stdin_and_pdf_pages(any_corpus_index: str) -> None:
    result = rt("search", "What is the deductible per insurance claim?", "--index", any_corpus_index,
                "--json", "-k", "3")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 3
    assert set(hits[0]) >= {"path", "page", "lines", "score", "text", "similarity"}
    assert hits[0]["path"].endswith("policy.pdf") and hits[0]["page"] == 3 and hits[0]["lines"] is None
    assert "150 euros per claim" in hits[0]["text"]

    many = rt("search", "-", "--index", any_corpus_index, "--json", "-k", "2",
              input="booking reference Lisbon\n\nHow many vacation days do we get?\n")
    lines = many.stdout.strip().splitlines()
    assert many.exit_code == 0 and len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert "QX7PLM" in first[0]["text"] and second[0]["path"].endswith("handbook.md")
    assert second[0]["lines"][0] >= 1

    plain = rt("search", "Which chain was put on the Gazelle?", "--index", any_corpus_index, "-k", "1")
    assert plain.exit_code == 0 and "bike-log.txt" in plain.output and "lines" in plain.output
    assert "similarity" in plain.output


def test_keyword_search_does_not_load_torch(any_corpus_index: str) -> None:
    code = ("import sys\nfrom runtime.cli import main\nsys.argv = ['rt', 'search', 'Gazelle', '--index', "
            f"{any_corpus_index!r}, '--mode', 'keyword', '--json']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('heavy:', sorted(m for m in ('torch', 'sentence_transformers', 'faiss') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert "bike-log.txt" in out.stdout and "heavy: []" in out.stdout


def test_errors_are_one_clear_line(tmp_path: Path, corpus_index: Path) -> None:
    missing = rt("search", "anything", "--index", str(tmp_path / "nowhere"))
    assert missing.exit_code == 1
    assert "rt: error: no index at" in missing.output and "run `rt index PATH`" in missing.output

    other = "sentence-transformers/all-mpnet-base-v2"
    mismatch = rt("search", "rent", "--index", str(corpus_index), "--embedding-model", other)
    assert mismatch.exit_code == 1
    assert f"built with embedding model all-MiniLM-L6-v2 (384 dimensions), not {other}" in mismatch.output
    extend = rt("index", str(tmp_path), "--index", str(corpus_index), "--embedding-model", other)
    assert extend.exit_code == 1 and "--rebuild --embedding-model" in extend.output

    nothing = rt("index", "--index", str(tmp_path / "new"))
    assert nothing.exit_code == 1 and "nothing to index yet" in nothing.output
    gone = rt("index", str(tmp_path / "no-such-folder"), "--index", str(tmp_path / "new2"))
    assert gone.exit_code == 1 and "does not exist" in gone.output
    bad_k = rt("search", "x", "-k", "0", "--index", str(corpus_index))
    assert bad_k.exit_code == 1 and "-k must be at least 1" in bad_k.output


def test_a_corrupt_index_is_reported_and_rebuild_replaces_it(tmp_path: Path) -> None:
    folder, docs = tmp_path / "ix", tmp_path / "docs"
    folder.mkdir()
    docs.mkdir()
    (docs / "empty.md").write_text("")
    (folder / "index.sqlite").write_bytes(b"this is not a database" * 100)
    broken = rt("search", "x", "--index", str(folder), "--mode", "keyword")
    assert broken.exit_code == 1 and "cannot read" in broken.output and "--rebuild" in broken.output
    rebuilt = rt("index", str(docs), "--index", str(folder), "--rebuild", "--no-progress")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert rt("search", "x", "--index", str(folder), "--mode", "keyword").exit_code == 0


def test_remove_from_a_missing_index_fails_and_creates_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "new"
    result = rt("index", "--remove", str(tmp_path / "notes"), "--index", str(folder))
    assert result.exit_code == 1, result.output
    assert f"rt: error: no index at {folder}" in result.output and "run `rt index PATH`" in result.output
    assert not folder.exists()
