"""Hostile and odd input: names that are not UTF-8, FIFOs, paths beyond PATH_MAX, PDFs without
text, queries with invalid UTF-8, FAISS caches that do not match the database, a full disk."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli
from runtime.index import Index
from runtime.index.vectors import VectorIndex, saved_generation_files, vectors_file
from tests.hashing_embedder import HashingEmbedder

REPO = Path(__file__).resolve().parents[2]
posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX file names and FIFOs")


def rt(*args: str, input: str | bytes | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), input=input)


def image_only_pdf(path: Path) -> None:
    """A one-page PDF with a drawing and no text (what a scanner makes, minus the image)."""
    from reportlab.pdfgen import canvas

    page = canvas.Canvas(str(path))
    page.rect(100, 100, 300, 400, fill=1)
    page.showPage()
    page.save()


@posix_only
def test_a_name_that_is_not_utf8_is_indexed_escaped_and_a_pdf_without_text_is_named(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    bad = docs / os.fsdecode(b"heron\xff.txt")
    bad.write_text("The grey heron nests by the reservoir every spring.")
    (docs / "rent.txt").write_text("The rent is due on the third working day.")
    image_only_pdf(docs / "scan.pdf")
    folder = tmp_path / "ix"
    result = rt("index", str(docs), "--index", str(folder), "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert sorted(report["added"]) == [str(docs / "heron\\xff.txt"), str(docs / "rent.txt")]
    assert report["no_text"] == [str(docs / "scan.pdf")] and report["skipped"] == {"empty": 1}

    again = rt("index", "--index", str(folder), "--no-progress")  # refresh: the same name, unchanged
    assert again.exit_code == 0, again.output
    assert "0 added, 0 updated, 0 removed, 3 unchanged" in again.output
    bad.write_text("The grey heron left the reservoir in autumn.")
    image_only_pdf(docs / "scan2.pdf")
    changed = rt("index", "--index", str(folder), "--no-progress")
    assert "0 added, 1 updated" in changed.output and "no text found in scan2.pdf" in changed.output

    found = rt("search", "heron reservoir", "--index", str(folder), "--mode", "keyword", "--json")
    assert found.exit_code == 0 and json.loads(found.stdout)[0]["path"] == str(docs / "heron\\xff.txt")


@posix_only
def test_a_file_with_a_name_that_is_not_utf8_can_be_removed_by_its_path(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    bad = docs / os.fsdecode(b"caf\xe9.txt")  # a Latin-1 name
    bad.write_text("Notes from the cafe.")
    with Index.open(tmp_path / "ix", create=True, embedder=HashingEmbedder()) as index:
        assert index.add([docs]).added == [str(docs / "caf\\xe9.txt")]
        assert index.remove([bad]) == [str(docs / "caf\\xe9.txt")]
        assert index.stats().documents == 0


@posix_only
def test_a_fifo_given_as_the_path_is_a_clear_error_and_one_inside_a_folder_is_skipped(tmp_path: Path) -> None:
    if sys.platform == "win32":  # skipped there by its marker; this tells mypy --platform win32 too
        pytest.skip("POSIX only")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = rt("index", str(fifo), "--index", str(tmp_path / "ix"))
    assert result.exit_code == 1
    assert f"rt: error: {fifo} is a FIFO (named pipe), not a file or folder" in result.output

    docs = tmp_path / "docs"
    docs.mkdir()
    os.mkfifo(docs / "queue.txt")
    (docs / "note.txt").write_text("A note about herons.")
    with Index.open(tmp_path / "ix2", create=True, embedder=HashingEmbedder()) as index:
        report = index.add([docs])
    assert report.added == [str(docs / "note.txt")] and report.skipped == {"not a regular file": 1}


def make_deep_folder(root: Path, depth: int) -> None:
    """Folders nested past PATH_MAX (4096 bytes on Linux), made relative to open descriptors."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d" * 200, dir_fd=fd)
            inner = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        note = os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(note, b"A note nobody can reach by its path.")
        os.close(note)
    finally:
        os.close(fd)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PATH_MAX of 4096 bytes is Linux's")
def test_folders_beyond_path_max_are_reported_not_silently_ignored(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("A note about herons.")
    make_deep_folder(docs, 22)
    try:
        with Index.open(tmp_path / "ix", create=True, embedder=HashingEmbedder()) as index:
            report = index.add([docs])
        assert report.added == [str(docs / "note.txt")]
        assert len(report.problems) == 1 and report.skipped["unreadable"] == 1
        where, why = report.problems[0]
        assert where.startswith(str(docs / ("d" * 200))) and "cannot list this folder" in why
        assert "File name too long" in why and "bytes; the system allows fewer" in why
    finally:
        shutil.rmtree(docs / ("d" * 200))  # rmtree works through descriptors, past PATH_MAX


def test_invalid_utf8_in_a_query_or_a_line_of_stdin_is_repaired_and_the_rest_answered(
        corpus_index: Path) -> None:
    # Python hands a command-line byte that is not UTF-8 to rt as a lone surrogate
    one = rt("search", "booking reference Lisbon \udcff", "--index", str(corpus_index), "--json", "-k", "1")
    assert one.exit_code == 0, one.output
    assert "QX7PLM" in json.loads(one.stdout)[0]["text"]

    lines = b"booking reference Lisbon\n\xff\xfe caf\xe9 \xc3\n\nHow many vacation days do we get?\n"
    many = rt("search", "-", "--index", str(corpus_index), "--json", "-k", "1", input=lines)
    assert many.exit_code == 0, many.output
    answers = [json.loads(line) for line in many.stdout.strip().splitlines()]
    assert len(answers) == 3
    assert "QX7PLM" in answers[0][0]["text"] and answers[2][0]["path"].endswith("handbook.md")

    plain = rt("search", "-", "--index", str(corpus_index), "-k", "1", "--mode", "keyword", input=b"caf\xe9\n")
    assert plain.exit_code == 0 and "# caf\ufffd" in plain.output


def two_indexes(tmp_path: Path, dimension_b: int) -> tuple[Path, Path]:
    """Index A: a heron note, then a tax note. Index B: the same texts in the other order."""
    texts = {"heron": "The grey heron nests by the reservoir.", "tax": "The quarterly tax return is due in April."}
    folders = []
    for name, order, dimension in (("a", ["heron", "tax"], 16), ("b", ["tax", "heron"], dimension_b)):
        docs = tmp_path / f"docs-{name}"
        docs.mkdir()
        for i, key in enumerate(order):
            (docs / f"{i}-{key}.txt").write_text(texts[key])
        with Index.open(tmp_path / name, create=True, embedder=HashingEmbedder(dimension=dimension)) as index:
            index.add([docs])
        folders.append(tmp_path / name)
    return folders[0], folders[1]


def swap_in_cache(source: Path, target: Path) -> Path:
    """Put ``source``'s FAISS file under the name of ``target``'s current generation."""
    (mine,) = saved_generation_files(target).values()
    (theirs,) = saved_generation_files(source).values()
    shutil.copyfile(theirs, mine)
    return mine


def test_a_valid_but_stale_faiss_cache_is_rebuilt_from_sqlite(tmp_path: Path) -> None:
    a, b = two_indexes(tmp_path, 16)
    stale = swap_in_cache(b, a)  # same count, same chunk ids (1, 2), other vectors
    with Index.open(a, embedder=HashingEmbedder()) as index:
        hits = index.search("grey heron reservoir", 1, mode="dense")
        assert hits[0].path.endswith("0-heron.txt") and hits[0].similarity == pytest.approx(hits[0].score)
        index.refresh()  # the writer finds the file stale too and rewrites it
        dimension = int(index.store.meta()["dimension"])
        fixed = VectorIndex.load(vectors_file(a, index.store.generation()), "flat")
        assert fixed.mismatch(dimension, index.store.vector_ids(), index.store.vector_blobs) is None
    assert stale.exists()


def test_a_faiss_cache_of_the_wrong_dimension_is_rebuilt_not_an_internal_error(tmp_path: Path) -> None:
    a, b = two_indexes(tmp_path, 8)
    swap_in_cache(b, a)
    with Index.open(a, embedder=HashingEmbedder()) as index:
        hits = index.search("grey heron reservoir", 2, mode="dense")
    assert [Path(h.path).name for h in hits] == ["0-heron.txt", "1-tax.txt"]


@contextlib.contextmanager
def tiny_disk(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root on Linux): {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0, reason="mounts a tmpfs")
@pytest.mark.slow
def test_a_full_disk_is_rts_message_on_its_own_line_after_the_progress_bar(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(4):
        (docs / f"n{i}.txt").write_text(" ".join(f"word{(i * 7919 + j * 104729) % 5003}" for j in range(40000)))
    with tiny_disk(tmp_path / "disk", "768k") as disk:
        out = subprocess.run([sys.executable, "-c", "from runtime.cli import main; main()", "index", str(docs),
                              "--index", str(disk / "ix")],
                             cwd=REPO, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "COLUMNS": "100"})
    assert out.returncode == 1, out.stderr
    last = out.stderr.split("\n")[-2]
    assert last.startswith("rt: error: the disk holding") and "is full" in last, out.stderr
    assert "internal error" not in out.stderr and "indexing:" in out.stderr.split("\n")[-3]


def test_invalid_utf8_in_a_question_reaches_the_model_repaired(smollm2_path: Path, corpus_index: Path) -> None:
    asked = rt("ask", "--no-rag", "--model", str(smollm2_path), "--max-tokens", "4", "--json", "Say hi \udcff")
    assert asked.exit_code == 0, asked.output
    assert "internal error" not in asked.output and json.loads(asked.stdout)["answer"] is not None

    chat = rt("chat", "--index", str(corpus_index), "--model", str(smollm2_path), "--max-tokens", "4",
              "--answer-anyway", input=b"Where is the \xff boiler?\nexit\n")
    assert chat.exit_code == 0, chat.output
    assert "internal error" not in chat.output
