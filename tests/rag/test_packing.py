"""Prompt packing on a real index (MiniLM, FAISS, SQLite) with small, overlapping chunks: the
model gets exact slices of the files, overlapping chunks of a file merge, a near-duplicate is
dropped, and the sentence that answers survives; end to end with the real SmolLM2."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from runtime.config import GenerateOptions, LoadOptions
from runtime.index import Hit, Index
from runtime.index.config import IndexOptions
from runtime.rag.config import PackingOptions
from runtime.rag.evidence import sentences
from runtime.rag.packing import merge_hits, pack

# Model processes are shared across the session, emptied between tests (tests/shared_model.py)
pytestmark = pytest.mark.usefixtures("shared_model_process")

# Invented facts, so an answer can only come from here; paragraphs long enough that a 64-token
# chunk holds only part of one and neighbouring chunks overlap.
LIGHTHOUSE = """# The Brannock Point lighthouse

The Brannock Point lighthouse stands on a granite spur at the northern tip of the Vessel
Islands. Its tower is painted in red and white bands and can be seen from the mainland on a
clear day. Fishermen from the harbour of Tullow have used it as a landmark for generations.

## Construction

Work on the tower began in 1871 under the engineer Margit Solberg. The stones were cut on
the mainland and carried across the strait on flat barges during the summer months. Three
workers were injured when a barge overturned in a storm. The tower was finished in 1874 and
first lit on the ninth of March that year.

## The lamp

The original lamp burned whale oil and was replaced by a kerosene burner in 1902. The current
lamp is electric and flashes white twice every fifteen seconds. Its light reaches 22 nautical
miles in good weather. A fog horn was added in 1931 and sounds once every forty seconds.

## Keepers

The last resident keeper, Oskar Venn, left the island in 1989 when the light was automated.
Visitors can climb the 143 steps of the tower on weekends between May and September. The
keeper's cottage now holds a small museum about shipwrecks on the Vessel Islands.
"""

# One paragraph of the lighthouse article, copied into a visitor leaflet with a new first line.
LEAFLET = """Visitor leaflet

The last resident keeper, Oskar Venn, left the island in 1989 when the light was automated.
Visitors can climb the 143 steps of the tower on weekends between May and September. The
keeper's cottage now holds a small museum about shipwrecks on the Vessel Islands.
"""

CORPUS = {"lighthouse.md": LIGHTHOUSE, "leaflet/visit.md": LEAFLET}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[Index]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("packing-corpus")
    for relative, text in CORPUS.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    folder = tmp_path_factory.mktemp("packing-index") / "index"
    with Index.open(folder, create=True, embedder=embedder,
                    options=IndexOptions(chunk_tokens=64, overlap_tokens=16)) as opened:
        opened.add([root])
        yield opened


def assert_exact_slice(hit: Hit) -> None:
    """The packed text is the file's text at ``chars``, on exactly the lines ``lines`` says."""
    text = Path(hit.path).read_text(encoding="utf-8")
    assert hit.chars is not None and hit.lines is not None
    start, end = hit.chars
    assert text[start:end] == hit.text
    assert hit.lines == (text.count("\n", 0, start) + 1, text.count("\n", 0, end) + 1)


def test_packed_sources_are_exact_slices_of_the_file_on_the_lines_they_name(index: Index) -> None:
    question = "When was the Brannock Point lighthouse first lit?"
    hits = index.search(question, 5)
    packed = pack(question, hits, index.embedder)
    assert packed
    for source in packed:
        assert_exact_slice(source)
    assert sum(len(s.text) for s in packed) < 0.7 * sum(len(h.text) for h in hits)


@pytest.mark.parametrize(("question", "answer"), [
    ("When was the Brannock Point lighthouse first lit?", "ninth of March"),
    ("How far does the light of the lamp reach?", "22 nautical"),
    ("Who was the engineer of the tower?", "Margit Solberg"),
    ("When was the Brannock Point lighthouse first lit?", "ninth of March"),
])
def test_the_sentence_that_answers_survives_in_its_passage_excerpt(index: Index, question: str, answer: str) -> None:
    # every passage kept (min_relative_score=0): this is the choice of sentences within one
    hits = index.search(question, 5)
    assert any(answer in h.text for h in hits)
    holding = [s for s in pack(question, hits, index.embedder, PackingOptions(min_relative_score=0.0))
               if answer in s.text]
    assert holding, question
    assert_exact_slice(holding[0])


@pytest.mark.parametrize(("question", "answer"), [
    ("How far does the light of the lamp reach?", "22 nautical"),
    ("Who was the engineer of the tower?", "Margit Solberg"),
    ("When was the Brannock Point lighthouse first lit?", "ninth of March"),
])
def test_the_sentence_that_answers_survives_packing_with_the_defaults(index: Index, question: str,
                                                                       answer: str) -> None:
    # "When was ... first lit?": its answer's passage scores 0.66 of the intro's "The Brannock Point
    # lighthouse stands ..."; the defaults keep every passage, so it stays (min_relative_score 0.8 drops it)
    hits = index.search(question, 5)
    holding = [s for s in pack(question, hits, index.embedder) if answer in s.text]
    assert holding, question
    assert_exact_slice(holding[0])


def test_overlapping_chunks_of_one_file_merge_into_one_source(index: Index) -> None:
    hits = [h for h in index.search("lighthouse lamp construction keepers", 20) if h.path.endswith("lighthouse.md")]
    hits.sort(key=lambda h: h.chars or (0, 0))
    pairs = [(a, b) for a, b in zip(hits, hits[1:])
             if a.chars and b.chars and b.chars[0] < a.chars[1]]
    assert pairs, "the 64-token chunks of a paragraph overlap"
    first, second = pairs[0]
    [region] = merge_hits([second, first])
    assert region.members == 2 and region.hit is second  # ranked where the better hit was
    assert region.chars == (first.chars[0], second.chars[1])  # type: ignore[index]
    text = Path(first.path).read_text(encoding="utf-8")
    assert region.text == text[region.chars[0]:region.chars[1]]  # type: ignore[index]
    # two whole chunks of one file come out as one source
    whole = PackingOptions(neighbours=50, max_sentences=100, widen_top=2)
    assert len(pack("lighthouse", [second, first], None, whole)) == 1


def test_chunks_separated_only_by_line_breaks_merge(index: Index) -> None:
    hits = [h for h in index.search("lighthouse lamp construction keepers", 20) if h.path.endswith("lighthouse.md")]
    text = Path(hits[0].path).read_text(encoding="utf-8")
    touching = [(a, b) for a in hits for b in hits
                if a.chars and b.chars and b.chars[0] > a.chars[1] and text[a.chars[1]:b.chars[0]].strip("\n") == ""]
    assert touching, "a heading starts a new chunk after a blank line"
    a, b = touching[0]
    [region] = merge_hits([a, b])
    assert region.text == text[a.chars[0]:b.chars[1]]  # type: ignore[index]


def test_a_near_duplicate_from_another_file_is_dropped(index: Index) -> None:
    question = "How many steps does the tower have for visitors?"
    hits = index.search(question, 5)
    holding = [h for h in hits if "143 steps" in h.text]
    assert {Path(h.path).name for h in holding} == {"lighthouse.md", "visit.md"}
    every_hit = PackingOptions(min_relative_score=0.0)  # only the duplicate check leaves one out
    packed = pack(question, hits, index.embedder, every_hit)
    with_steps = [s for s in packed if "143 steps" in s.text]
    assert len(with_steps) == 1
    assert with_steps[0].path == holding[0].path  # the better-ranked copy is the one kept
    kept_without_dedup = pack(question, hits, index.embedder, replace(every_hit, duplicate_similarity=1.01))
    assert len([s for s in kept_without_dedup if "143 steps" in s.text]) == 2


@pytest.mark.slow  # two answers; the fast path keeps rt ask --pack/--no-pack (below)
def test_an_answer_cites_packed_sources_whose_lines_match_the_file(index: Index, smollm2_path: Path) -> None:
    from runtime.llm.model import Model
    from runtime.rag.rag import RAG

    question = "When was the Brannock Point lighthouse first lit?"
    options = GenerateOptions(max_tokens=32)
    with Model(smollm2_path, LoadOptions(n_ctx=2048, threads=1)) as model:  # pinned: claims come from the text
        packed = RAG(model, index, options=options).ask(question)
        whole = RAG(model, index, options=options, packing=PackingOptions(enabled=False)).ask(question)
    assert packed.covered and packed.sources
    assert packed.usage.prompt_tokens < whole.usage.prompt_tokens
    assert sum(len(s.text) for s in packed.sources) < sum(len(s.text) for s in whole.sources)
    for source in packed.sources:
        text = Path(source.path).read_text(encoding="utf-8")
        assert source.lines is not None
        first, last = source.lines
        assert source.text in "\n".join(text.splitlines()[first - 1:last])
    for claim in packed.claims:
        for evidence in claim.evidence:
            assert evidence.lines is not None
            first, last = evidence.lines
            lines = Path(evidence.path).read_text(encoding="utf-8").splitlines()[first - 1:last]
            assert evidence.text.split()[0] in " ".join(lines)


def test_rt_ask_no_pack_gives_whole_chunks_and_pack_excerpts(index: Index, smollm2_path: Path) -> None:
    import json

    from tests.rag.conftest import run

    question = "When was the Brannock Point lighthouse first lit?"
    common = ("--index", str(index.folder), "--model", str(smollm2_path), "--json", "--max-tokens", "8")
    code, out, err = run("ask", question, "--no-pack", *common)
    assert code == 0, err
    whole = json.loads(out)
    code, out, err = run("ask", question, *common)  # --pack is the default
    assert code == 0, err
    packed = json.loads(out)
    assert whole["covered"] and packed["covered"] and whole["sources"] and packed["sources"]
    chunks = {h.text for h in index.search(question, 5)}
    assert all(s["text"] in chunks for s in whole["sources"])
    assert sum(len(s["text"]) for s in packed["sources"]) < sum(len(s["text"]) for s in whole["sources"])
    assert packed["usage"]["prompt_tokens"] < whole["usage"]["prompt_tokens"]
    for source in packed["sources"]:
        lines = Path(source["path"]).read_text(encoding="utf-8").splitlines()
        assert source["text"] in "\n".join(lines[source["lines"][0] - 1:source["lines"][1]])


@pytest.mark.parametrize("rest_after", [0, 1])
def test_only_the_best_ranked_passages_keep_their_neighbours(index: Index, rest_after: int) -> None:
    question = "Who was the engineer of the tower?"
    best = next(h for h in index.search(question, 5) if "Solberg" in h.text)
    leaflet = next(h for h in index.search("visitor leaflet", 5) if h.path.endswith("visit.md"))
    narrow = pack(question, [best, leaflet], index.embedder, PackingOptions(widen_top=1, rest_after=rest_after))
    wide = pack(question, [best, leaflet], index.embedder, PackingOptions(widen_top=2))
    assert [s.path for s in narrow] == [s.path for s in wide] == [best.path, leaflet.path]
    assert narrow[0] == wide[0]  # the best-ranked passage keeps its neighbours
    assert len(sentences(narrow[1].text, prose=True)) == 1 + rest_after < len(sentences(wide[1].text, prose=True))
    for source in narrow:
        assert_exact_slice(source)
