"""``~`` in path options and arguments, as PowerShell and cmd pass it: literally.

bash expands ``~`` before rt sees it, so these tests call the CLI without a shell (CliRunner),
with HOME pointing at tmp_path: the same string a Windows shell hands over.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.setenv("USERPROFILE", str(folder))  # what expanduser reads on Windows
    monkeypatch.chdir(tmp_path)  # a literal "~" folder would appear here
    return folder


def test_index_and_search_accept_a_literal_tilde(home: Path, tmp_path: Path) -> None:
    notes = home / "Documents" / "notes"
    notes.mkdir(parents=True)
    (notes / "lease.md").write_text("The lease of the flat is up for renewal on 1 March 2027.\n",
                                    encoding="utf-8")
    made = CliRunner().invoke(cli, ["index", "~/Documents/notes", "--index", "~/ix", "--no-progress", "--json"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["added"] == [str(notes / "lease.md")]
    assert (home / "ix").is_dir() and not (tmp_path / "~").exists()

    found = CliRunner().invoke(cli, ["search", "renewal", "--index", "~/ix", "--mode", "keyword", "--json"])
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)[0]["path"] == str(notes / "lease.md")

    forgotten = CliRunner().invoke(cli, ["index", "--remove", "~/Documents/notes/lease.md", "--index", "~/ix",
                                         "--json"])
    assert forgotten.exit_code == 0, forgotten.output
    assert json.loads(forgotten.stdout)["removed_paths"] == [str(notes / "lease.md")]


def test_convert_out_and_info_expand_the_tilde(home: Path, tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["convert", "--out", "~/models/smol.gguf", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["path"] == str(home / "models" / "smol.gguf")
    assert (home / "models" / "smol.gguf").is_file() and not (tmp_path / "~").exists()

    described = CliRunner().invoke(cli, ["info", "~/models/smol.gguf", "--json"])
    assert described.exit_code == 0, described.output
    assert json.loads(described.stdout)["path"] == str(home / "models" / "smol.gguf")


def test_a_missing_folder_is_named_after_expansion(home: Path) -> None:
    result = CliRunner().invoke(cli, ["index", "~/nowhere", "--index", "~/ix"])
    assert result.exit_code != 0
    assert f"{home / 'nowhere'} does not exist" in result.output
