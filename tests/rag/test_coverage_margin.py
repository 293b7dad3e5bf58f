"""The coverage rule's ``margin`` signal (how far the first passage stands ahead of the second)
and its weight in a calibrated rule, on the real MiniLM, FAISS and SQLite FTS5."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.index import Index
from runtime.rag.calibration import CalibratedRule, Labelled, calibrate, fit
from runtime.rag.config import CoverageOptions
from runtime.rag.coverage import decide, measure

# Care notes of the same kind, sharing their words (water, light, repot, leaves): a question
# about a plant the notes hold finds one passage far ahead, one about a plant they do not hold
# finds several on its topic, close together.
PLANTS = {
    "calathea": "bright indirect light and keep away from draughts. Water it every five days with "
                "filtered water. Repot the calathea every second spring into peat-free compost.",
    "ficus": "a bright spot near a window. Water it when the top soil is dry. Repot the ficus every "
             "third year, in spring, into a pot one size larger.",
    "pothos": "low or medium light. Water it every week in summer and every two weeks in winter. Repot "
              "the pothos when roots grow out of the drainage holes.",
    "aloe": "full sun on a south window. Water it every three weeks and let the soil dry out. Repot the "
            "aloe every two years into cactus compost.",
    "fern": "shade and humid air; mist the fronds daily. Water it twice a week. Repot the fern every "
            "spring into a wide shallow pot.",
}


@pytest.fixture(scope="module")
def plants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    root = tmp_path_factory.mktemp("plants")
    for name, care in PLANTS.items():
        (root / f"{name}.md").write_text(f"# Caring for the {name}\n\nThe {name} wants {care}\n", encoding="utf-8")
    with Index.open(tmp_path_factory.mktemp("plants-index") / "index", create=True) as index:
        index.add([root])
        yield index


def test_a_question_about_a_held_document_has_its_first_passage_further_ahead(plants: Index) -> None:
    held = measure("How often should the calathea be repotted?",
                   plants.search("How often should the calathea be repotted?"), plants)
    absent = measure("How often should the monstera be repotted?",
                     plants.search("How often should the monstera be repotted?"), plants)
    assert held["margin"] > absent["margin"] + 0.1, (held["margin"], absent["margin"])


def test_the_margin_weight_moves_the_score_and_the_reason_says_so() -> None:
    signals = {"best_similarity": 0.5, "term_share": 0.5, "margin": 0.3, "missing_terms": [], "chunks": 10}
    without = CoverageOptions(term_weight=1.0, margin_weight=0.0, min_score=1.2)
    assert not decide(dict(signals), without).covered
    with_margin = decide(dict(signals), CoverageOptions(term_weight=1.0, margin_weight=1.0, min_score=1.2))
    assert with_margin.covered and "0.30 ahead of the next" in with_margin.reason


def test_calibration_fits_a_margin_weight_where_only_the_margin_separates() -> None:
    # same similarity and key-term share on both sides; the answerable questions' first passage
    # stands 0.3-0.5 ahead, the others' 0-0.2: a rule without the margin cannot tell them apart
    def item(margin: float, answerable: bool) -> Labelled:
        return Labelled({"best_similarity": 0.4, "term_share": 0.6, "margin": margin, "missing_terms": [],
                         "chunks": 50}, answerable)

    items = [item(0.3 + 0.01 * i, True) for i in range(20)] + [item(0.01 * i, False) for i in range(20)]
    options = fit(items)
    assert options.margin_weight > 0
    found = calibrate(items, seed=3)
    assert found.kept and found.rule is not None and found.rule.margin_weight > 0
    assert found.fitted is not None and found.fitted.balanced == 1.0 and found.default.balanced == 0.5
    assert found.rule.options().margin_weight == found.rule.margin_weight


def test_a_rule_stored_before_the_margin_existed_still_loads_without_it() -> None:
    old = ('{"balanced_accuracy": 0.9, "date": "2026-12-01T00:00:00+00:00", "default_balanced_accuracy": 0.7, '
           '"min_score": 0.8, "n": 60, "rt_version": "0.1.0", "term_weight": 1.2}')
    rule = CalibratedRule.from_json(old)
    assert rule is not None and rule.margin_weight == 0.0 and rule.options().term_weight == 1.2
    assert CalibratedRule.from_json(rule.to_json()) == rule
    assert CalibratedRule.from_json('{"term_weight": 1.2}') is None  # a required field missing


def test_the_signals_rt_ask_json_shows_carry_the_margin(plants: Index) -> None:
    question = "How often should the aloe be watered?"
    signals = measure(question, plants.search(question), plants)
    assert set(signals) >= {"best_similarity", "term_share", "margin"}
    assert signals["margin"] is not None and signals["margin"] >= 0
