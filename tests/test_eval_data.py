"""The evaluation harness's data: found in an ordered list of sources, checked by SHA-256, split by
document with a fixed seed, and a one-line error naming every place looked when none has it."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import textwrap
from pathlib import Path

import pytest

from benchmarks import eval_data, eval_long
from benchmarks.eval_data import DATASETS, EvalDataMissing, fetch, load_eval_set

REDDIT = eval_data.SHARED_DATA / DATASETS["reddit"].file_name
needs_reddit = pytest.mark.skipif(not REDDIT.is_file(), reason=f"{REDDIT} is not beside the project")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RT_EVAL_CACHE", str(tmp_path / "eval"))
    monkeypatch.delenv("RT_EVAL_DATA", raising=False)
    return tmp_path / "eval"


@needs_reddit
def test_the_reddit_set_is_read_from_the_shared_data_folder() -> None:
    assert fetch() == REDDIT
    assert fetch("reddit") == REDDIT


@needs_reddit
def test_a_cached_copy_comes_first_and_a_corrupt_one_is_passed_over(_cache: Path) -> None:
    _cache.mkdir(parents=True)
    cached = _cache / REDDIT.name
    shutil.copyfile(REDDIT, cached)
    assert fetch("reddit") == cached
    cached.write_bytes(cached.read_bytes()[:-10])  # a truncated copy: its SHA-256 differs
    assert fetch("reddit") == REDDIT


def test_a_missing_data_set_names_the_file_and_every_place_looked(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path, _cache: Path) -> None:
    monkeypatch.setattr(eval_data, "SHARED_DATA", tmp_path / "nowhere")
    with pytest.raises(EvalDataMissing) as caught:
        fetch("squad", registry=False)
    message = str(caught.value)
    assert "squad_v1.1_dev.json" in message and "\n" not in message
    assert str(_cache / "squad_v1.1_dev.json") in message and str(tmp_path / "nowhere") in message
    with pytest.raises(EvalDataMissing, match="unknown eval data set 'wiki'"):
        fetch("wiki")


def test_squad_is_still_read_from_a_cached_copy(tmp_path: Path, _cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in with the right name but not SQuAD's bytes is refused by its SHA-256.
    monkeypatch.setattr(eval_data, "SHARED_DATA", tmp_path / "nowhere")
    _cache.mkdir(parents=True)
    (_cache / "squad_v1.1_dev.json").write_text(json.dumps({"data": []}))
    with pytest.raises(EvalDataMissing, match="SHA-256 differs"):
        fetch("squad", registry=False)


@needs_reddit
def test_the_reddit_split_is_by_post_fixed_and_keeps_held_out_posts_out_of_the_corpus(tmp_path: Path) -> None:
    data = load_eval_set(tmp_path / "a", per_split=100_000, unanswerable=100_000)
    again = load_eval_set(tmp_path / "b", per_split=100_000, unanswerable=100_000)
    assert [q.id for q in data.test] == [q.id for q in again.test]
    assert data.name == "reddit"
    dev, test, held = set(data.dev_titles), set(data.test_titles), set(data.held_out_titles)
    assert not (dev & test) and not (dev & held) and not (test & held)
    assert len(dev | test | held) == 2035 and len(held) == 339
    files = {f.stem for f in data.corpus.glob("*.md")}
    assert files == dev | test
    assert all(q.path is None and q.title in held for q in data.unanswerable_test + data.unanswerable_dev)
    assert {q.title for q in data.unanswerable_dev}.isdisjoint({q.title for q in data.unanswerable_test})
    assert len(data.dev) + len(data.test) + len(data.unanswerable_dev) + len(data.unanswerable_test) == 9803
    q = data.test[0]
    assert q.path is not None and q.line is not None
    text = (data.corpus / q.path).read_text(encoding="utf-8").splitlines()
    assert any(a in text[q.line - 1] for a in q.answers)
    assert data.is_gold(q, str(data.corpus / q.path), (q.line, q.line), text[q.line - 1])


# --- the long-document set (benchmarks/eval_long.py) ------------------------------------------
def _ar_member(name: str, data: bytes) -> bytes:
    header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def _deb(files: dict[str, bytes]) -> bytes:
    """A Debian package as dpkg-deb makes one: an ar archive holding a compressed tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return (b"!<arch>\n" + _ar_member("debian-binary", b"2.0\n") + _ar_member("control.tar.xz", b"x")
            + _ar_member("data.tar.xz", buffer.getvalue()))


def _manual(topic: str, n: int) -> bytes:
    """A long AsciiDoc-like manual: wrapped sentences under underlined headings."""
    sections = []
    for s in range(n):
        body = " ".join(f"The {topic} step {s}x{i} writes record{s}x{i} into the {topic}ledger{s} "
                        f"before the flush{i} completes." for i in range(12))
        sections.append(f"SECTION {s}\n----------\n" + textwrap.fill(body, 70))
    return ("\n\n".join(sections) + "\n").encode()


@pytest.fixture()
def git_doc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, _cache: Path) -> bytes:
    files = {eval_long.MEMBER_FOLDER + "alpha.txt": _manual("alpha", 20),
             eval_long.MEMBER_FOLDER + "technical/beta.txt": _manual("beta", 22),
             eval_long.MEMBER_FOLDER + "short.txt": b"too short to be a long document\n",
             eval_long.MEMBER_FOLDER + "gamma.html": _manual("gamma", 20)}
    deb = _deb(files)
    monkeypatch.setattr(eval_data, "SHARED_DATA", tmp_path / "nowhere")
    monkeypatch.setattr(eval_long, "DEB_SHA256", hashlib.sha256(deb).hexdigest())
    return deb


def test_the_long_document_package_is_found_by_sha256_or_named_as_missing(git_doc: bytes, _cache: Path,
                                                                            tmp_path: Path) -> None:
    with pytest.raises(EvalDataMissing) as caught:
        eval_long.fetch_deb(registry=False)
    message = str(caught.value)
    assert eval_long.DEB_NAME in message and "\n" not in message
    assert str(_cache / eval_long.DEB_NAME) in message and str(tmp_path / "nowhere") in message
    _cache.mkdir(parents=True)
    (_cache / eval_long.DEB_NAME).write_bytes(git_doc[:-3])  # truncated: its SHA-256 differs
    with pytest.raises(EvalDataMissing, match="SHA-256 differs"):
        eval_long.fetch_deb(registry=False)
    (_cache / eval_long.DEB_NAME).write_bytes(git_doc)
    assert eval_long.fetch_deb(registry=False) == _cache / eval_long.DEB_NAME


def test_the_long_document_set_keeps_long_text_files_and_asks_about_their_sentences(
        git_doc: bytes, _cache: Path, tmp_path: Path) -> None:
    _cache.mkdir(parents=True)
    (_cache / eval_long.DEB_NAME).write_bytes(git_doc)
    data = eval_long.load_long_set(tmp_path / "out")
    assert sorted(p.name for p in data.corpus.iterdir()) == ["alpha.txt", "technical__beta.txt"]
    assert {data.dev_titles, data.test_titles} == {("alpha.txt",), ("technical__beta.txt",)}
    questions = data.dev + data.test
    assert len(questions) == 2 * eval_long.PER_FILE
    for q in questions:
        assert q.path is not None and q.line is not None
        text = (data.corpus / q.path).read_text(encoding="utf-8")
        sentence_line = text.splitlines()[q.line - 1]
        answer = q.answers[0]
        assert answer in text and answer.lower() not in q.text.lower()
        assert any(w in sentence_line.lower() for w in q.text.lower().removesuffix("?").split()[-1:])
    again = eval_long.load_long_set(tmp_path / "out")  # the same seed gives the same set
    assert again.dev == data.dev and again.test == data.test
