"""Issue 21, the index: two names that used to share a key, symbolic links out of an indexed
folder, skipped files named, a moved file not embedded again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli
from runtime.index import Index
from runtime.index.scan import key_path, path_key, shown
from tests.index.conftest import CountingEmbedder
from tests.index.sqlite_rows import sqlite_db

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX byte names and symlinks without privileges")


def rt(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args))


def keyword_paths(folder: Path, query: str) -> list[str]:
    result = rt("search", query, "--index", str(folder), "--json", "--mode", "keyword")
    assert result.exit_code == 0, result.output
    return [h["path"] for h in json.loads(result.stdout)]


def test_keys_are_lossless_and_valid_names_are_their_own_key() -> None:
    byte_name = os.fsdecode(b"/docs/x\xff.txt") if os.name != "nt" else "/docs/x\udcff.txt"
    literal = "/docs/x\\xff.txt"  # a real name: backslash, x, f, f
    windows = "C:\\docs\\half\ud800pair.txt"  # a lone surrogate from a WTF-16 name
    assert path_key(literal) == literal and path_key("/docs/café.txt") == "/docs/café.txt"
    assert path_key(byte_name) != path_key(literal)
    assert shown(path_key(byte_name)) == literal  # shown as before: the escape people know
    for name in (byte_name, literal, windows, "/plain/name.md"):
        key = path_key(name)
        key.encode("utf-8")  # storable in SQLite
        assert str(key_path(key)) == str(Path(name))
    assert shown(path_key(windows)) == "C:\\docs\\half\\ud800pair.txt"


@posix_only
def test_a_byte_name_beside_its_literal_escape_are_two_documents(tmp_path: Path) -> None:
    docs, folder = tmp_path / "docs", tmp_path / "ix"
    docs.mkdir()
    undecodable = docs / os.fsdecode(b"x\xff.txt")
    literal = docs / "x\\xff.txt"
    undecodable.write_text("The kestrel hovers over the motorway verge.")
    literal.write_text("The otter slides down the muddy riverbank.")

    first = rt("index", str(docs), "--index", str(folder), "--json", "--no-progress")
    assert first.exit_code == 0, first.output  # was: IntegrityError, nothing indexed
    report = json.loads(first.stdout)
    assert report["added"] == [str(literal), str(literal)] and report["documents"] == 2
    assert keyword_paths(folder, "kestrel motorway") == [str(literal)]  # shown escaped
    assert keyword_paths(folder, "otter riverbank") == [str(literal)]

    literal.write_text("The otter now sleeps in a holt under the willow.")
    again = rt("index", str(docs), "--index", str(folder), "--no-progress")
    assert "0 added, 1 updated, 0 removed, 1 unchanged" in again.output, again.output
    assert len(keyword_paths(folder, "kestrel motorway")) == 1  # not replaced by its neighbour

    removed = rt("index", "--index", str(folder), "--remove", str(undecodable), "--json")
    assert json.loads(removed.stdout)["removed_paths"] == [str(literal)]
    assert keyword_paths(folder, "kestrel motorway") == []
    assert keyword_paths(folder, "otter willow") == [str(literal)]


@posix_only
def test_an_index_made_with_the_old_escaped_keys_keeps_working(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / os.fsdecode(b"heron\xe9.txt")).write_text("The grey heron nests by the reservoir.")
    (docs / "plain.txt").write_text("The rent is due on the third working day.")
    with Index.open(tmp_path / "ix", create=True, embedder=embedder) as index:
        index.add([docs])
        stored = sorted(p for (p,) in sqlite_db(index).execute("SELECT path FROM documents"))
        assert stored[1] == str(docs / "plain.txt")  # a valid name is stored as itself
        with index.store.transaction():  # what rt wrote before keys were lossless
            sqlite_db(index).execute("UPDATE documents SET path = ? WHERE path = ?",
                                   (str(docs / "heron\\xe9.txt"), stored[0]))
        report = index.refresh()
        assert report.unchanged == 1 and report.added == report.removed == [str(docs / "heron\\xe9.txt")]
        assert [h.path for h in index.search("heron reservoir", 5, mode="keyword")] == [str(docs / "heron\\xe9.txt")]
        assert index.stats().documents == 2


@posix_only
def test_symlinks_out_of_the_folder_are_skipped_and_named_unless_followed(tmp_path: Path) -> None:
    docs, outside, folder = tmp_path / "docs", tmp_path / "outside", tmp_path / "ix"
    docs.mkdir()
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0:the secret administrator account:/root:/bin/bash")
    (outside / "sub").mkdir()
    (outside / "sub" / "diary.txt").write_text("The private diary mentions the hidden safe.")
    (docs / "note.txt").write_text("The plumber comes on Thursday morning.")
    (docs / "passwd.txt").symlink_to(outside / "passwd")
    (docs / "linked").symlink_to(outside / "sub", target_is_directory=True)
    (docs / "loop").symlink_to(docs, target_is_directory=True)  # a cycle, for --follow-symlinks

    plain = rt("index", str(docs), "--index", str(folder), "--no-progress")
    assert plain.exit_code == 0, plain.output
    assert "1 added" in plain.output and "3 skipped (3 symlink)" in plain.output
    assert "symlink: linked, loop, passwd.txt" in plain.output
    assert keyword_paths(folder, "secret administrator") == [] and keyword_paths(folder, "private diary") == []

    followed = rt("index", str(docs), "--index", str(folder), "--follow-symlinks", "--json", "--no-progress")
    assert followed.exit_code == 0, followed.output
    report = json.loads(followed.stdout)
    assert sorted(Path(p).name for p in report["added"]) == ["diary.txt", "passwd.txt"]
    assert keyword_paths(folder, "secret administrator") == [str(docs / "passwd.txt")]
    assert keyword_paths(folder, "private diary") == [str(docs / "linked" / "diary.txt")]


def test_skipped_files_are_named_bounded(tmp_path: Path) -> None:
    docs, folder = tmp_path / "docs", tmp_path / "ix"
    docs.mkdir()
    (docs / "note.txt").write_text("The plumber comes on Thursday morning.")
    for n in range(23):  # sparse: over the 100 MB limit without using the disk
        with open(docs / f"big{n:02d}.log", "wb") as f:
            f.truncate(100_000_001)
    (docs / "tool.exe").write_bytes(b"MZ\x90\x00")

    result = rt("index", str(docs), "--index", str(folder), "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["skipped"] == {"too large": 23, "binary": 1}  # the existing key is unchanged
    assert report["skipped_files"]["too large"] == [str(docs / f"big{n:02d}.log") for n in range(20)]
    assert report["skipped_files"]["binary"] == [str(docs / "tool.exe")]

    human = rt("index", str(docs), "--index", str(folder), "--no-progress")
    assert "too large: big00.log, big01.log, big02.log, big03.log, big04.log and 18 more" in human.output
    assert "binary: tool.exe" in human.output


def test_a_file_moved_between_runs_is_not_embedded_again(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    (docs / "a").mkdir(parents=True)
    (docs / "a" / "pets.txt").write_text("Feed the axolotl on Mondays only, with bloodworms.\n\n" * 30)
    counting = CountingEmbedder(embedder)
    with Index.open(tmp_path / "ix", create=True, embedder=counting) as index:
        index.add([docs])
        (docs / "b").mkdir()
        (docs / "a" / "pets.txt").rename(docs / "b" / "pets.txt")
        counting.embedded.clear()
        report = index.add([docs])
        assert report.added == [str(docs / "b" / "pets.txt")] and report.removed == [str(docs / "a" / "pets.txt")]
        assert report.chunks_embedded == 0 and counting.embedded == []
        assert [h.path for h in index.search("axolotl bloodworms", 1)] == [str(docs / "b" / "pets.txt")]


def test_a_windows_junction_is_skipped_like_a_symlink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Imitated: os.lstat reports the reparse tag Windows gives a junction (IO_REPARSE_TAG_MOUNT_POINT)."""
    from types import SimpleNamespace

    from runtime.index import scan

    docs = tmp_path / "docs"
    (docs / "junction").mkdir(parents=True)
    (docs / "junction" / "secret.txt").write_text("Somewhere else entirely.")
    (docs / "note.txt").write_text("The plumber comes on Thursday morning.")
    real_lstat = os.lstat

    def lstat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        facts = real_lstat(path, *args, **kwargs)
        if Path(path) == docs / "junction":
            return SimpleNamespace(st_mode=facts.st_mode, st_reparse_tag=0xA0000003)
        return facts

    monkeypatch.setattr(scan.os, "lstat", lstat)
    result = scan.scan_root(docs)
    assert result.files == [docs / "note.txt"] and result.skipped == {"symlink": 1}
    assert result.skipped_files.names == {"symlink": [str(docs / "junction")]}
