"""The store seam: the Index and rag reach a store only through the IndexStore protocol, the
store owns its SQL, and one idf weighs words everywhere (real SQLite FTS5 and FAISS)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from runtime.index import Index
from runtime.index.stores.base import IndexStore
from tests.hashing_embedder import HashingEmbedder

ROOT = Path(__file__).resolve().parents[2]
DOCS = {
    "kettle.txt": "The Zorblat kettle is descaled with citric acid. Descaling takes ten minutes.",
    "bike.txt": "The Velomax chain is oiled every 300 km. Velomax tyres take 4.5 bar.",
    "bike2.txt": "Velomax frames are steel. A Velomax weighs 12 kg with its rack.",
    "bike3.txt": "Velomax gears: 27. The Velomax bell rings twice.",
    "garden.txt": "Krellian tomatoes ripen after 70 days and turn violet.",
}


def protocol_names() -> set[str]:
    names = set()
    for cls in IndexStore.__mro__:
        if cls is object:
            continue
        names |= {n for n in vars(cls) if not n.startswith("_")}
    return names


class ProtocolOnly:
    """A store that answers only what the IndexStore protocol names: any other attribute (the
    SQLite connection ``db``, a table name) raises, as it would on a server database's store."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._allowed = protocol_names()

    def __getattr__(self, name: str) -> Any:
        if name not in self._allowed:
            raise AttributeError(f"{name} is not part of the IndexStore protocol")
        return getattr(self._inner, name)


@pytest.fixture
def index(tmp_path: Path) -> Any:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    folder = tmp_path / "index"
    with Index.open(folder, create=True, embedder=HashingEmbedder()) as built:
        built.add([docs])
    opened = Index.open(folder, embedder=HashingEmbedder())
    opened.store = opened._target = ProtocolOnly(opened.store)
    yield opened
    opened.close()


def test_the_index_and_rag_need_nothing_of_a_store_beyond_the_protocol(index: Any, tmp_path: Path) -> None:
    from runtime.rag.coverage import assess, measure
    from runtime.rag.followup import contextual_query, topic_terms

    question = "How is the Zorblat kettle descaled?"
    hits = index.search(question, 3)
    assert Path(hits[0].path).name == "kettle.txt"
    signals = measure(question, hits, index)
    assert signals["missing_terms"] == [] and signals["term_share"] == pytest.approx(1.0)
    assert assess("Who painted the Mona Lisa?", index.search("Who painted the Mona Lisa?", 3), index).signals[
        "missing_terms"]
    assert topic_terms("What is a Velomax?", index, max_share=1.0, min_concentration=0.3, min_chunks=1) == ["velomax"]
    assert contextual_query("How heavy is it?", ["What is a Velomax?"], index) == "How heavy is it?"
    assert index.chunks_holding_all(["velomax", "chain"]) and index.chunks_matching("descaling") == 1
    index.set_setting("rule", "x")
    assert index.setting("rule") == "x"
    index.set_setting("rule", None)
    assert index.setting("rule") is None
    assert index.rename(tmp_path / "docs" / "garden.txt", tmp_path / "docs" / "plants.txt") == 1
    assert [Path(p).name for p in index.remove([tmp_path / "docs" / "plants.txt"])] == ["plants.txt"]
    (tmp_path / "docs" / "garden.txt").unlink()
    (tmp_path / "docs" / "new.txt").write_text("Quorra receipts are due within 14 days.", encoding="utf-8")
    report = index.refresh()
    assert [Path(p).name for p in report.added] == ["new.txt"]
    assert Path(index.search("Quorra receipts", 1)[0].path).name == "new.txt"


def test_the_terms_api_answers_on_the_index(index: Any) -> None:
    ids = [h.chunk_id for h in index.search("Velomax", 10, mode="keyword")]
    assert index.counts() == (5, 5)
    assert index.term_frequencies(["velomax", "descaled", "nowhere"]) == {"velomax": 3, "descaled": 1, "nowhere": 0}
    assert index.idf(["velomax", "nowhere"]) == {"velomax": pytest.approx(math.log(6 / 3.5)),
                                                 "nowhere": pytest.approx(math.log(6 / 0.5))}
    assert index.chunks_holding(["velomax"], ids) == {"velomax": set(ids)}
    assert index.document_spread("velomax") == (3, 1)
    assert index.document_spread('"') == (0, 0)  # a quote alone is searched as text, never an FTS5 error
    kettle = index.search("kettle", 1, mode="keyword")[0]
    offsets = index.match_offsets("descaled", [kettle.chunk_id])[kettle.chunk_id]
    assert [kettle.text[o:o + 7].lower() for o in offsets] == ["descale", "descali"]


def test_sql_on_the_index_tables_is_written_only_in_the_store() -> None:
    sql = re.compile(r"chunks_fts|\.db\.|\bexecute\(|\bSELECT\b.+\bFROM\b|\bDELETE FROM\b")
    allowed = {"runtime/index/store.py", "runtime/index/store_schema.py"}
    offenders = []
    for path in sorted((ROOT / "runtime").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative in allowed or relative.startswith("runtime/index/stores/"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if sql.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []


def test_rag_never_reaches_through_the_index_to_its_store() -> None:
    offenders = [f"{p.name}:{n}" for p in sorted((ROOT / "runtime" / "rag").glob("*.py"))
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"\.store\b|\bStore\b", line)]
    assert offenders == []


def test_one_idf_weighs_words_for_sentence_rescoring_coverage_and_eval() -> None:
    from runtime.index import proximity, terms
    from runtime.rag import coverage, eval_set

    assert proximity.idf is terms.idf and coverage.idf is terms.idf and eval_set.idf is terms.idf
    # the coverage rule was fitted with the unclamped formula: its numbers are unchanged
    for n_chunks in (1, 2, 10, 1000):
        for holding in range(0, n_chunks + 1, max(1, n_chunks // 10)):
            assert terms.idf(holding, n_chunks) == math.log((n_chunks + 1) / (holding + 0.5))
