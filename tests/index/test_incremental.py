"""Incremental runs: exactly the new and changed text is embedded; deleted files disappear."""

from __future__ import annotations

import os
from pathlib import Path

from runtime.index import Index
from runtime.index.vectors import saved_generation_files
from tests.index.conftest import CountingEmbedder
from tests.index.corpus import BIKE, BOILER, LEASE, RECIPE
from tests.index.sqlite_rows import sqlite_db


def chunk_texts(index: Index, path: Path) -> list[str]:
    rows = sqlite_db(index).execute(
        "SELECT c.text FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.path = ? "
        "ORDER BY c.ordinal", (str(path),)).fetchall()
    return [r[0] for r in rows]


def test_edit_delete_add_touch_reembeds_exactly_the_changes(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    docs.mkdir()
    long_text = "\n\n".join([LEASE, BOILER, BIKE])  # several chunks
    files = {"a.txt": RECIPE, "b.md": BOILER, "c.md": BIKE, "long.md": long_text}
    for name, text in files.items():
        (docs / name).write_text(text)
    counting = CountingEmbedder(embedder)
    with Index.open(tmp_path / "ix", create=True, embedder=counting) as index:
        first = index.add([docs])
        assert sorted(Path(p).name for p in first.added) == ["a.txt", "b.md", "c.md", "long.md"]
        old_long = chunk_texts(index, docs / "long.md")
        assert len(old_long) >= 3 and first.chunks_embedded == len(counting.embedded)

        (docs / "a.txt").write_text(RECIPE.replace("35\nminutes", "50\nminutes"))   # edit
        (docs / "b.md").unlink()                                                   # delete
        (docs / "e.md").write_text("The spare house key is with Frau Demir on the 2nd floor.")  # add
        (docs / "c.md").write_text(BIKE)                                           # touch only
        os.utime(docs / "c.md", (1, 1))
        edited_long = long_text.replace("Lock: the ABUS folding lock", "Lock: the Kryptonite U-lock")
        (docs / "long.md").write_text(edited_long)                                 # edit near the end
        counting.embedded.clear()

        second = index.add([docs])
        assert [Path(p).name for p in second.added] == ["e.md"]
        assert sorted(Path(p).name for p in second.updated) == ["a.txt", "long.md"]
        assert [Path(p).name for p in second.removed] == ["b.md"]
        assert second.unchanged == 1
        new_long = chunk_texts(index, docs / "long.md")
        expected = set(chunk_texts(index, docs / "a.txt")) | set(chunk_texts(index, docs / "e.md"))
        expected |= set(new_long) - set(old_long)
        assert set(counting.embedded) == expected and len(counting.embedded) == len(expected)
        assert second.chunks_reused == len(set(new_long) & set(old_long)) > 0
        assert second.chunks_embedded == len(expected)

        assert "50\nminutes" in index.search("How long does the lentil soup simmer?", 1)[0].text
        assert all(h.path != str(docs / "b.md") for h in index.search("Vaillant F.28", 9, mode="keyword"))
        assert "Kryptonite" in index.search("Kryptonite", 1, mode="keyword")[0].text
        assert index.search("Who has the spare house key?", 1)[0].path == str(docs / "e.md")
        assert list(saved_generation_files(index.folder)) == [index.store.generation()]

        counting.embedded.clear()
        third = index.add([docs])
        assert not third.changed and third.unchanged == 4 and counting.embedded == []

    counting.embedded.clear()
    with Index.open(tmp_path / "ix", rebuild=True, embedder=counting) as index:
        assert index.stats().documents == 4  # the old index stays until the rebuilt one replaces it
        assert len(index.add([docs]).added) == 4 and counting.embedded
        assert index.stats().documents == 4 and not (index.folder / "rebuild").exists()


def test_refresh_remove_and_a_reader_during_writes(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    notes, more = tmp_path / "notes", tmp_path / "more"
    notes.mkdir()
    more.mkdir()
    (notes / "one.txt").write_text("The bakery on the corner opens at six.")
    (more / "two.txt").write_text("The swimming pool closes at nine on Fridays.")
    with Index.open(tmp_path / "ix", create=True, embedder=embedder) as writer:
        writer.add([notes])
        reader = Index.open(tmp_path / "ix", embedder=embedder)
        assert reader.search("When does the bakery open?", 1)[0].path.endswith("one.txt")
        writer.add([more])
        (notes / "three.txt").write_text("The library is closed on Mondays.")
        report = writer.refresh()  # both roots, remembered
        assert [Path(p).name for p in report.added] == ["three.txt"] and report.unchanged == 2
        assert reader.search("pool closing time", 1)[0].path.endswith("two.txt")  # sees new commits
        assert writer.remove([more]) == [str(more / "two.txt")]
        assert all(not h.path.endswith("two.txt") for h in reader.search("swimming pool", 5))
        assert reader.stats().roots == (str(notes),)
        reader.close()


def test_globs_hidden_binary_empty_and_unreadable_files(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    (docs / ".git").mkdir(parents=True)
    (docs / "drafts").mkdir()
    (docs / ".git" / "config").write_text("secret")
    (docs / ".hidden.md").write_text("hidden note")
    (docs / "keep.md").write_text("The boat is moored at pier 7.")
    (docs / "drafts" / "wip.md").write_text("draft text")
    (docs / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (docs / "data.bin2").write_bytes(b"\x00\x01\x02\x03" * 10)
    (docs / "empty.txt").write_bytes(b"")
    (docs / "broken.txt").write_bytes(b"\x81\x8d\x8f\x90\x9d")
    with Index.open(tmp_path / "ix", create=True, embedder=embedder) as index:
        report = index.add([docs], exclude=["drafts/*"])
        assert [Path(p).name for p in report.added] == ["keep.md"]
        assert dict(report.skipped) == {"hidden": 2, "excluded": 1, "binary": 2, "empty": 1, "unreadable": 1}
        assert report.problems and report.problems[0][0] == str(docs / "broken.txt")
        assert index.add([docs], include=["*.md"], exclude=["drafts/*"]).unchanged == 1  # empty.txt now excluded
