"""``rt eval``: questions from a file or made from the index, measured on the real MiniLM, FAISS and
SQLite (and SmolLM2 where answers are scored); the coverage rule calibrated per index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.errors import InputError
from runtime.index import Index
from runtime.rag import calibration
from runtime.rag.calibration import CalibratedRule, Labelled, calibrate, rule_for
from runtime.rag.config import CoverageOptions
from runtime.rag.eval_set import EvalQuestion, GeneratedSet, generate, read_questions
from runtime.rag.evaluate import evaluate, without_files
from runtime.rag.metrics import first_rank, same_source
from tests.postgres import postgres_in_full_run
from tests.rag.conftest import run

# Model processes are shared across the session, emptied between tests (tests/shared_model.py)
pytestmark = pytest.mark.usefixtures("shared_model_process")

# Twelve short documents, each on an invented subject with its own names, so that a question
# made from one of them is answerable from it alone.
SUBJECTS = [
    ("Quillon", "harbour", "lanterns"), ("Brevik", "orchard", "pears"), ("Tanzor", "observatory", "comets"),
    ("Mellish", "bakery", "pretzels"), ("Ordova", "library", "maps"), ("Faskel", "foundry", "bells"),
    ("Yarrow", "monastery", "honey"), ("Peltrun", "railway", "signals"), ("Ismay", "vineyard", "grapes"),
    ("Corvane", "shipyard", "masts"), ("Dunmere", "quarry", "granite"), ("Zephyrine", "theatre", "masks"),
]


def _document(name: str, place: str, thing: str, n: int) -> str:
    return (f"# The {name} {place}\n\n"
            f"The {name} {place} was founded in {1700 + 7 * n} by the {name}-{place} guild of {thing}. "
            f"Every spring its keepers count {40 + n} crates of {thing} and record them in the {name} ledger.\n\n"
            f"Visitors to the {place} of {name} may tour the {thing} halls on Thursdays. "
            f"The chief warden of {name} wears a {thing}-shaped badge of copper and {place} blue.\n")


@pytest.fixture(scope="module")
def twelve(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("eval-corpus")
    for n, (name, place, thing) in enumerate(SUBJECTS):
        (root / f"{name.lower()}.md").write_text(_document(name, place, thing, n), encoding="utf-8")
    folder = tmp_path_factory.mktemp("eval-index") / "index"
    with Index.open(folder, create=True, embedder=embedder) as index:
        index.add([root])
    yield folder


@pytest.fixture(scope="module")
def any_twelve(store: str, twelve: Path, request: pytest.FixtureRequest) -> str:
    """``twelve`` as a folder, or pushed into a PostgreSQL database."""
    if store == "folder":
        return str(twelve)
    from runtime.index.push import push

    url = request.getfixturevalue("pg_server").create_database("rt_eval_twelve")
    push(twelve, url)
    return str(url)


def test_a_source_matches_at_a_folder_boundary_with_either_separator() -> None:
    assert same_source("/home/me/notes/lease.md", "notes/lease.md")
    assert same_source("/home/me/notes/lease.md", "notes\\lease.md")
    assert not same_source("/home/me/oldlease.md", "lease.md")
    assert first_rank(["/a/x.md", "/a/y.md"], "y.md") == 2 and first_rank(["/a/x.md"], "y.md") is None


def test_a_question_file_is_read_with_a_bom_and_bad_lines_are_named(tmp_path: Path) -> None:
    good = tmp_path / "q.jsonl"
    good.write_bytes("\ufeff".encode() + b'{"question": "Where?", "source": "a.md"}\n\n'
                     b'{"question": "Nope?", "answerable": false}\n')
    assert read_questions(good) == [EvalQuestion("Where?", "a.md"), EvalQuestion("Nope?", answerable=False)]
    for line, said in [("not json", "line 2 is not JSON"), ('{"source": "a.md"}', 'line 2 needs a "question"'),
                       ('{"question": "Why?"}', 'line 2 says neither "source" nor "answer"'),
                       ('{"question": "Why?", "answerable": "no"}', '"answerable" must be true or false')]:
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"question": "Fine?", "answer": "x"}\n' + line + "\n", encoding="utf-8")
        with pytest.raises(InputError, match=said):
            read_questions(bad)
    with pytest.raises(InputError, match="holds no question"):
        (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
        read_questions(tmp_path / "empty.jsonl")


def test_rt_eval_measures_a_question_file_without_the_model(index_dir: Path, tmp_path: Path) -> None:
    questions = tmp_path / "mine.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"question": "How often should the Zorblat 3000 be descaled?", "source": "coffee/zorblat.md",
         "answer": "60 days"},
        {"question": "How many gears does the Velomax have?", "source": "velomax.txt"},
        {"question": "Who won the 1998 football world cup?", "answerable": False},
    ]), encoding="utf-8")
    code, out, err = run("eval", "--index", str(index_dir), "--questions", str(questions), "--no-answers", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["measured"] == result["questions"] == 3 and not result["interrupted"]
    assert result["retrieval"] == {"hit@1": 1.0, "hit@5": 1.0, "hit@10": 1.0, "mrr": 1.0, "questions": 2}
    assert result["coverage"] == {"answered": 1.0, "declined": 1.0, "answerable": 2, "unanswerable": 1}
    assert result["answers"] is None and result["rule"] == "default" and result["calibration"] is None
    assert result["set"]["file"] == str(questions)
    code, out, _ = run("eval", "--index", str(index_dir), "--questions", str(questions), "--no-answers")
    assert code == 0 and "hit@1 1.000" in out and "declined 100.0% of 1 unanswerable" in out


def test_rt_eval_scores_the_models_answers(index_dir: Path, tmp_path: Path) -> None:
    questions = tmp_path / "mine.jsonl"
    questions.write_text(json.dumps({"question": "How often should the Zorblat 3000 be descaled?",
                                     "source": "zorblat.md", "answer": "60 days"}) + "\n", encoding="utf-8")
    code, out, err = run("eval", "--index", str(index_dir), "--questions", str(questions), "--threads", "1",
                         "--max-tokens", "48", "--json")
    assert code == 0, err
    answers = json.loads(out)["answers"]
    assert answers["answered"] == 1 and answers["containment"] in (0.0, 1.0)
    assert 0.0 <= answers["citation_validity"] <= 1.0 and 0.0 <= answers["supported_claims"] <= 1.0
    assert json.loads(out)["seconds_per_question"] > 0


@postgres_in_full_run
def test_a_set_made_from_the_index_is_checked_kept_and_asked_without_its_held_out_files(any_twelve: str) -> None:
    with Index.open(any_twelve) as index:
        made = generate(index, 16, seed=3)
        again = generate(index, 16, seed=3)
        assert made.questions == again.questions and made.held_out == again.held_out  # seeded
        assert len(made.held_out) == 2 and sum(made.dropped.values()) >= 0
        answerable = [q for q in made.questions if q.answerable]
        unanswerable = [q for q in made.questions if not q.answerable]
        assert answerable and unanswerable and all(q.source not in made.held_out for q in answerable)
        every = index.chunk_ids_by_document()
        for q in answerable:  # its answer is a word of a chunk of its own file
            assert q.source is not None and q.answer is not None
            texts = index.chunks(every[q.source]).values()
            assert any(q.answer.lower() in row.text.lower() for row in texts)
        with without_files(index, made.held_out) as searched:
            assert set(searched.chunk_ids_by_document()) == set(every) - set(made.held_out)
            report = evaluate(searched, made.questions)
        assert set(index.chunk_ids_by_document()) == set(every)  # the index itself is untouched
    figures = report.to_dict()
    assert figures["measured"] == len(made.questions)
    assert figures["retrieval"]["hit@5"] >= 0.8  # each question names its document's own words
    assert figures["coverage"]["declined"] >= 0.5


def test_rt_eval_keeps_the_made_set_in_the_index_folder_and_reuses_it(twelve: Path) -> None:
    code, out, err = run("eval", "--index", str(twelve), "-n", "12", "--no-answers", "--json")
    assert code == 0, err
    saved = twelve / "eval" / "generated-seed0-n12.jsonl"
    first = GeneratedSet.load(saved)
    result = json.loads(out)
    assert result["set"]["method"] == "terms" and result["set"]["held_out_files"] == len(first.held_out)
    assert result["measured"] == len(first.questions)
    saved.write_text(saved.read_text(encoding="utf-8").replace("What can you tell me about", "Tell me about"),
                     encoding="utf-8")
    code, out, err = run("eval", "--index", str(twelve), "-n", "12", "--no-answers", "--json")
    assert code == 0, err
    assert GeneratedSet.load(saved).questions[0].question.startswith("Tell me")  # read back, not remade


def _labelled(scores: list[tuple[float, float, bool]]) -> list[Labelled]:
    return [Labelled({"best_similarity": best, "term_share": share, "missing_terms": [], "chunks": 10}, answerable)
            for best, share, answerable in scores]


def test_calibration_fits_on_part_and_keeps_a_rule_only_when_it_beats_the_default() -> None:
    # Answerable questions score 0.5-0.7, unanswerable 0.2-0.4: rt's default threshold (0.953)
    # declines everything, a fitted one separates them.
    separable = _labelled([(0.5 + 0.01 * i, 0.2, True) for i in range(20)]
                          + [(0.2 + 0.01 * i, 0.2, False) for i in range(20)])
    found = calibrate(separable, seed=1)
    assert found.kept and found.rule is not None and found.fitted is not None
    assert found.fitted.balanced == 1.0 and found.default.balanced == 0.5
    assert found.fit_n == 24 and found.check_n == 16
    # Labels that no threshold can tell apart: the fit cannot beat the default on the rest.
    noise = _labelled([(1.0 + 0.001 * (i % 7), 0.5, i % 2 == 0) for i in range(40)])
    refused = calibrate(noise, seed=1)
    assert not refused.kept and "no better than the default" in refused.reason
    assert not calibrate(separable[:6] + separable[-6:], seed=1).kept  # too few to fit


def test_a_stored_rule_decides_rt_ask_and_reset_returns_to_the_default(index_dir: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "index"
    shutil.copytree(index_dir, folder)
    rule = CalibratedRule(0.5, 0.31, 40, "2026-12-07T00:00:00+00:00", 0.9, 0.7, "0.1.0")
    with Index.open(folder) as index:
        assert rule_for(index) == (CoverageOptions(), "default")
        calibration.store_rule(index, rule)
    with Index.open(folder) as index:
        assert calibration.stored_rule(index) == rule
        assert rule_for(index)[0].min_score == 0.31
    code, out, err = run("ask", "--index", str(folder), "--threads", "1", "--max-tokens", "8", "--json",
                         "How often should the Zorblat 3000 be descaled?")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["coverage"]["signals"]["rule"] == "calibrated" and answer["threshold"] == 0.31
    code, out, err = run("eval", "--index", str(folder), "--reset")
    assert code == 0 and "default coverage rule" in out
    with Index.open(folder) as index:
        assert calibration.stored_rule(index) is None and rule_for(index)[1] == "default"


def test_rt_eval_calibrate_reports_both_rules_and_stores_only_a_kept_one(twelve: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "index"
    shutil.copytree(twelve, folder)
    code, out, err = run("eval", "--index", str(folder), "--calibrate", "-n", "40", "--json")
    assert code == 0, err
    cal = json.loads(out)["calibration"]
    assert cal["default"]["min_score"] == CoverageOptions().min_score
    with Index.open(folder) as index:
        assert (calibration.stored_rule(index) is not None) == cal["kept"]
    assert cal["kept"] or cal["reason"]


def test_an_interrupt_keeps_what_was_measured(index_dir: Path) -> None:
    questions = [EvalQuestion("How many gears does the Velomax have?", "velomax.txt")] * 5
    seen = []

    def stop_after_two(result: object) -> None:
        seen.append(result)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with Index.open(index_dir) as index:
        report = evaluate(index, questions, progress=stop_after_two)
    assert report.interrupted and len(report.results) == 2
    assert report.to_dict()["measured"] == 2 and report.to_dict()["questions"] == 5


def test_a_made_questions_key_terms_are_the_words_it_asks_about_not_its_template(twelve: Path) -> None:
    # "documents" and "say" of the old template were weighed as key terms: rare in many indexes,
    # and absent from nearly every passage, they held each made question's term share down
    from runtime.rag.coverage import informative_terms, measure

    with Index.open(twelve) as index:
        made = generate(index, 12, seed=0)
        for q in made.questions:
            terms = informative_terms(q.question)
            assert terms and not {"documents", "say"} & set(terms), q.question
            assert all(t in q.question.lower() for t in terms)
        q = next(q for q in made.questions if q.answerable)
        assert measure(q.question, index.search(q.question), index)["term_share"] == 1.0
