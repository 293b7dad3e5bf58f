"""The evaluation harness's data: found in an ordered list of sources, checked by SHA-256, split by
document with a fixed seed, and a one-line error naming every place looked when none has it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import eval_data
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
