"""The labelled claim set and the threshold search of benchmarks/bench_evidence.py, on hand-made
items scored by rt's own evidence check with the real MiniLM and the real index."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.bench_evidence import (
    WINDOW,
    Item,
    build_items,
    cited,
    cut,
    declarative,
    fit,
    measure,
    scores,
    stand_in,
)
from benchmarks.eval_data import EvalSet, Question
from runtime.index import Index
from runtime.rag.answer import Source
from tests.rag.conftest import CORPUS


@pytest.fixture(scope="module")
def index(index_dir: Path) -> Iterator[Index]:
    with Index.open(index_dir) as opened:
        yield opened


def _source(relative: str) -> Source:
    return Source(1, relative, None, (1, CORPUS[relative].count("\n")), 1.0, 0.5, CORPUS[relative])


def test_a_question_and_its_answer_become_a_statement() -> None:
    assert declarative("Who ruled the duchy of Normandy?", "Richard I") == "Richard I ruled the duchy of Normandy"
    assert declarative("When did the Normans conquer England?", "1066") == "the Normans conquer England in 1066"
    assert declarative("In what year did the Normans conquer England?", "1066") == "the Normans conquer England in 1066"
    assert declarative("What is the capital of Normandy?", "Rouen") == "the capital of Normandy is Rouen"
    assert declarative("How many gears does the Velomax have?", "27") == "the Velomax have 27 gears"


def test_a_cut_is_a_slice_of_the_sentence_holding_the_answer() -> None:
    text = ("The bike is red. Its long steel chain, made in a small town of the Alps by hand, must be oiled "
            "every 500 kilometres with the supplied Velomax chain oil from the shop. Nothing else.")
    piece = cut(text, "every 500 kilometres")
    assert piece is not None and piece in text and "every 500 kilometres" in piece
    before, after = piece.split("every 500 kilometres")
    assert len(before.split()) == WINDOW and len(after.split()) == WINDOW
    assert cut(text, "27 gears") is None


def test_a_stand_in_answer_is_of_the_same_kind_and_not_in_the_source() -> None:
    question = Question("q", "How often must the chain be oiled?", ("every 500 kilometres",), "Velomax",
                        "velomax.txt", 4)
    pool = [(Question("a", "?", ("1.8 litres",), "Zorblat", "z.md", 4), "1.8 litres"),
            (Question("b", "?", ("Quorra Ltd",), "Policy", "p.rst", 4), "Quorra Ltd"),
            (Question("c", "?", ("27",), "Velomax", "velomax.txt", 3), "27")]
    source = CORPUS["bikes/velomax.txt"]
    assert stand_in(question, "every 500 kilometres", source, pool, random.Random(0)) == "1.8 litres"  # 27 is in it


def test_the_set_builder_labels_claims_from_real_retrieval(index: Index) -> None:
    questions = (
        Question("v", "How often must the Velomax chain be oiled?", ("every 500 kilometres",), "Velomax",
                 "velomax.txt", 4),
        Question("z", "How much water does the tank of the Zorblat 3000 hold?", ("1.8 litres",), "Zorblat",
                 "zorblat.md", 4),
        Question("t", "How many days after planting do Krellian tomatoes ripen?", ("70 days",), "Tomatoes",
                 "tomatoes.md", 4),
    )
    data = EvalSet(Path("."), questions, (), (), (), (), (), ())
    items, skipped = build_items(data, index, questions, index.embedder)
    assert {(i.label, i.form) for i in items} == {(label, form) for label in ("supported", "wrong source", "wrong fact")
                                                 for form in ("rewrite", "cut")}
    answers = [q.answers[0] for q in questions]
    for item in items:
        assert item.claim.startswith("According to [1], ") or item.claim.endswith(" [1].")
        held = [a for a in answers if a in item.claim and a in item.source.text]
        if item.label == "supported":
            assert held
        elif item.label == "wrong source":  # the claim states an answer its source does not hold
            assert not held and any(a in item.claim for a in answers)
        else:                               # a stand-in answer, in the gold source
            assert not held and any(a in item.source.text for a in answers)
    assert not skipped.get("gold passage not in the first 10 hits")


@pytest.mark.slow
def test_the_grid_search_picks_a_threshold_that_separates_a_separable_set(index: Index) -> None:
    claims = ["the Zorblat 3000 heats water to 94 degrees Celsius", "the tank of the Zorblat holds 1.8 litres",
              "the Zorblat is descaled with white vinegar every 60 days"]
    items = [Item("supported", "rewrite", cited(c, k), _source("coffee/zorblat.md")) for k, c in enumerate(claims)]
    items += [Item(label, "rewrite", cited(c, k), _source(relative)) for k, c in enumerate(claims)
              for label, relative in (("wrong source", "garden/tomatoes.md"), ("wrong fact", "office/policy.rst"))]
    cache: dict[float, list[float]] = {}

    def score_for(weight: float) -> list[float]:
        return cache.setdefault(weight, scores(items, index.embedder, weight))

    fitted = fit(items, score_for)
    values = score_for(fitted.lexical_weight)
    positive = [v for i, v in zip(items, values) if i.supported]
    negative = [v for i, v in zip(items, values) if not i.supported]
    assert max(negative) < fitted.min_support <= min(positive)
    assert measure(items, values, fitted.min_support)["balanced"] == 1.0
    assert measure(items, values, fitted.min_support)["AUC"] == 1.0
