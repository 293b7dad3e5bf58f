"""Evidence: each sentence of an answer is checked against the sources it cites, with the real
index (MiniLM embeddings) and, end to end, the real SmolLM2."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.errors import UnsupportedAnswerError
from runtime.index import Index
from runtime.rag.answer import Source
from runtime.rag.evidence import check_claims, split_claims
from tests.rag.conftest import run

# Model processes are shared across the session, emptied between tests (tests/shared_model.py)
pytestmark = pytest.mark.usefixtures("shared_model_process")


@pytest.fixture(scope="module")
def index(index_dir: Path) -> Iterator[Index]:
    with Index.open(index_dir) as opened:
        yield opened


@pytest.fixture(scope="module")
def sources(index: Index) -> list[Source]:
    """[1] the Velomax manual, [2] the Zorblat coffee machine: real retrieved passages."""
    velomax = index.search("How often must the Velomax chain be oiled?", 1)[0]
    zorblat = index.search("How do I descale the Zorblat 3000?", 1)[0]
    assert velomax.path.endswith("velomax.txt") and zorblat.path.endswith("zorblat.md")
    return [Source(n, h.path, h.page, h.lines, h.score, h.similarity, h.text)
            for n, h in enumerate([velomax, zorblat], start=1)]


def test_citations_after_the_full_stop_belong_to_the_sentence_before() -> None:
    assert split_claims("According to [1], it has 27 gears. It weighs 3.2 kg. [2]\nNo more.") == [
        ("According to [1], it has 27 gears.", [1]),
        ("It weighs 3.2 kg. [2]", [2]),
        ("No more.", []),
    ]


def test_a_claim_is_supported_by_the_sentence_of_its_cited_source(index: Index, sources: list[Source]) -> None:
    [claim] = check_claims("According to [1], the chain is oiled every 500 kilometres.", sources, index.embedder)
    assert claim.supported and claim.cites == [1]
    [evidence] = claim.evidence
    assert evidence.n == 1 and "500 kilometres" in evidence.text
    assert evidence.lines is not None
    line = Path(evidence.path).read_text(encoding="utf-8").splitlines()[evidence.lines[0] - 1]
    assert "500 kilometres" in line  # the lines point at the sentence in the file


def test_a_claim_citing_a_source_that_does_not_hold_it_is_unsupported(index: Index, sources: list[Source]) -> None:
    claims = check_claims(
        "The Velomax chain must be oiled every 500 kilometres [2]. The Zorblat tank holds 1.8 litres [2]. "
        "The Velomax is made of titanium [1]. It is very popular. It has 27 gears [7].",
        sources, index.embedder)
    assert [c.supported for c in claims] == [False, True, False, False, False]
    assert claims[0].cites == [2] and claims[0].evidence[0].n == 2  # the best [2] had, still not enough
    assert claims[3].cites == [] and claims[3].evidence == []        # cites nothing
    assert claims[4].cites == [7] and claims[4].evidence == []       # cites a source that was not given


def test_answerable_question_is_covered_with_a_supported_claim(index_dir: Path, smollm2_path: Path) -> None:
    code, out, err = run("ask", "How often must the Velomax chain be oiled?", "--index", str(index_dir),
                         "--model", str(smollm2_path), "--json", "--max-tokens", "48", "--strict")
    assert code == 0, err
    data = json.loads(out)
    assert data["coverage"]["covered"] is True and data["supported"] is True
    supported = [c for c in data["claims"] if c["supported"]]
    assert supported and supported[0]["cites"]
    evidence = supported[0]["evidence"][0]
    assert {"n", "text", "lines"} <= set(evidence) and "500" in evidence["text"]
    assert evidence["n"] in supported[0]["cites"]


def test_the_cli_quotes_the_supporting_sentence_under_the_answer(index_dir: Path, smollm2_path: Path) -> None:
    code, out, err = run("ask", "How often must the Velomax chain be oiled?", "--index", str(index_dir),
                         "--model", str(smollm2_path), "--max-tokens", "48")
    assert code == 0, err
    evidence = out.partition("\nEvidence:\n")[2]
    assert '"The chain must be oiled every 500 kilometres' in evidence and "velomax.txt, line" in evidence


def test_strict_turns_an_answer_without_supported_claims_into_an_error(
        index_dir: Path, smollm2_path: Path, sources: list[Source], index: Index) -> None:
    from runtime.cli.answering import check_strict
    from runtime.config import GenerateOptions, LoadOptions
    from runtime.rag.rag import RAG

    with RAG.open(smollm2_path, index_dir, load=LoadOptions(n_ctx=2048, threads=1),
                  options=GenerateOptions(max_tokens=16)) as rag:
        answer = rag.ask("How often must the Velomax chain be oiled?")
    wrong = dataclasses.replace(answer, claims=check_claims("The Velomax is made of titanium [1].",
                                                             sources, index.embedder))
    assert wrong.supported is False and wrong.to_dict()["supported"] is False
    assert check_strict(wrong, strict=False) is True  # a note on stderr, exit status 0
    with pytest.raises(UnsupportedAnswerError) as raised:
        check_strict(wrong, strict=True)
    assert raised.value.exit_code == 4
