"""Coverage: whether the indexed documents hold the answer, decided from several signals, on the
real index (MiniLM, FAISS, SQLite FTS5) of the small corpus in conftest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.index import Index
from runtime.rag.config import CoverageOptions
from runtime.rag.coverage import assess, decide, informative_terms, measure
from tests.postgres import postgres_in_full_run
from tests.rag.conftest import run

# Model processes are shared across the session, emptied between tests (tests/shared_model.py)
pytestmark = pytest.mark.usefixtures("shared_model_process")


@pytest.fixture(scope="module")
def index(any_index_dir: str) -> Iterator[Index]:
    with Index.open(any_index_dir) as opened:
        yield opened


def test_question_words_are_not_informative_terms() -> None:
    assert informative_terms("How many gears does the Velomax have in 2024?") == ["gears", "velomax", "2024"]


@pytest.mark.parametrize("question", [
    "How do I descale the Zorblat 3000?",
    "How often must the Velomax chain be oiled?",
    "What must Quorra employees do with receipts?",
])
def test_answerable_questions_are_covered(index: Index, question: str) -> None:
    coverage = assess(question, index.search(question), index)
    assert coverage.covered, coverage.reason
    assert coverage.signals["term_share"] > 0.5 and coverage.signals["missing_terms"] == []


@pytest.mark.parametrize("question", [
    "Who painted the Mona Lisa?",
    "Who is the president of the Auvergne region?",
    "What is the capital of France?",
])
def test_unrelated_questions_are_not_covered(index: Index, question: str) -> None:
    coverage = assess(question, index.search(question), index)
    assert not coverage.covered
    assert coverage.reason and coverage.signals["missing_terms"]


@postgres_in_full_run
def test_a_name_the_index_never_mentions_declines_even_when_similar(index: Index) -> None:
    # close to the Velomax passage in meaning and words, but about a bicycle the index never names
    question = "How often must the chain of the Brompton bicycle be oiled?"
    signals = measure(question, index.search(question), index)
    assert "brompton" in signals["missing_terms"] and "chain" in signals["terms_found"]
    assert decide(dict(signals), CoverageOptions(min_score=0.0, max_missing_share=1.0)).covered
    coverage = decide(dict(signals), CoverageOptions(min_score=0.0, max_missing_share=0.3))
    assert not coverage.covered and '"brompton"' in coverage.reason


@postgres_in_full_run
def test_similarity_and_key_terms_add_up_to_the_score(index: Index) -> None:
    question = "How long do Krellian tomatoes take to ripen?"
    signals = measure(question, index.search(question), index)
    score = signals["best_similarity"] + CoverageOptions().term_weight * signals["term_share"]
    assert decide(dict(signals), CoverageOptions(min_score=score - 0.01)).covered
    declined = decide(dict(signals), CoverageOptions(min_score=score + 0.01))
    assert not declined.covered and f"score {score:.2f}" in declined.reason


def test_json_carries_the_coverage_decision_and_its_signals(index_dir: Path, smollm2_path: Path) -> None:
    code, out, err = run("ask", "Who is the president of the Auvergne region?", "--index", str(index_dir),
                         "--model", str(smollm2_path), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["covered"] is False and data["coverage"]["covered"] is False
    assert data["coverage"]["reason"] in data["answer"]
    assert {"best_similarity", "term_coverage", "missing_terms", "keyword_best"} <= set(data["coverage"]["signals"])
    assert data["claims"] == [] and data["supported"] is None
