"""Prompt packing: the relevant part of each retrieved passage, not the whole chunk (issue 10 §2).

A retrieved chunk is about 200 embedding tokens; the sentence that answers a question is
usually one of them. :func:`pack` turns the ranked hits into fewer, shorter sources:

1. **Select** in each hit the sentence closest to the question, by the signals
   :mod:`runtime.rag.evidence` uses for claims: the share of the question's content words it
   holds and its embedding similarity with the index's embedder. The best-ranked hit
   (``widen_top``) keeps it with ``neighbours`` sentences on each side, and any other sentence
   that scores within ``keep_ratio`` of the best (with the sentences between, so the excerpt
   stays one span): it is the passage most likely to hold the answer, and an answer often sits
   beside the sentence that matches the question. The other hits give their best sentence
   (and ``rest_after`` sentences after it): they corroborate or offer an alternative.
   A hit whose best sentence is far below the best of all (``min_relative_score``) can be left
   out; rt's default keeps every hit, as leaving some out cost citation validity (PackingOptions).
2. **Merge** excerpts of the same file (and page) whose character spans overlap or touch
   (chunks share ``overlap_tokens``) into one, ranked where its best hit was.
3. **Drop** an excerpt whose words (3-word shingles) are mostly those of a higher-ranked one.

Every packed source is an exact slice of its file's text: ``text`` is what the model sees,
``chars`` its span in the file (or page) and ``lines`` the lines it sits on, so a citation and
its evidence point at what the model read. Coverage is still decided on the retrieved chunks
(:mod:`runtime.rag.coverage`), before packing.

:func:`build_packed_prompt` packs only what the context can hold: the first
:data:`FIRST_ROUND` hits, then twice as many each round while every packed source still fits
the prompt (:func:`runtime.rag.prompt.build_prompt`'s budget search), scoring each hit once.
``-k 1000`` on a 19,571-chunk index once spent 281 s packing every hit for a prompt that held a
few dozen; ``-k 100000`` ran past 600 s at 1.7 GB.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

from runtime.rag.config import PackingOptions
from runtime.rag.evidence import Span, claim_words, sentences
from runtime.rag.prompt import BuiltPrompt, Turn, build_prompt

if TYPE_CHECKING:
    from runtime.index import Hit
    from runtime.index.embedders.base import Embedder
    from runtime.llm.types import ChatModel

# With -k up to this, every hit is packed at once (as rt always did); past it, rounds double.
FIRST_ROUND = 32

_WORD = re.compile(r"\w+", re.UNICODE)
_HEADING = re.compile(r"\s*#")


@dataclass(frozen=True)
class Region:
    """Consecutive text of one file made of one or more overlapping hits; ``hit`` is the best."""

    hit: Hit
    text: str
    chars: tuple[int, int] | None
    lines: tuple[int, int] | None
    members: int = 1


def merge_hits(hits: Sequence[Hit]) -> list[Region]:
    """Hits of the same file and page whose spans overlap or touch, as one region each, in the
    order of their best hit. Text between two spans is rebuilt only when it is known: the spans
    overlap (both are exact slices of the file) or the gap is nothing but line breaks."""
    # only regions of the same file and page can join: each hit is compared with those alone
    by_file: defaultdict[tuple[str, int | None], list[Region]] = defaultdict(list)
    for hit in hits:
        region = Region(hit, hit.text, hit.chars, hit.lines)
        regions = by_file[hit.path, hit.page]
        merged = True
        while merged:  # a new hit may bridge two regions
            merged = False
            for i, other in enumerate(regions):
                joined = _join(other, region)
                if joined is not None:
                    region = joined
                    del regions[i]
                    merged = True
                    break
        regions.append(region)
    order = {id(hit): rank for rank, hit in enumerate(hits)}
    return sorted((r for regions in by_file.values() for r in regions), key=lambda r: order[id(r.hit)])


def _join(a: Region, b: Region) -> Region | None:
    """``a`` (ranked first) and ``b`` as one region when they are of one file and page and
    overlap or touch."""
    if (a.hit.path != b.hit.path or a.hit.page != b.hit.page or a.chars is None or b.chars is None
            or len(a.text) != a.chars[1] - a.chars[0] or len(b.text) != b.chars[1] - b.chars[0]):
        return None
    (first, (start, first_end)), (second, (second_start, second_end)) = sorted(
        [(a, a.chars), (b, b.chars)], key=lambda pair: pair[1][0])
    gap = second_start - first_end
    if second_end <= first_end:
        text = first.text  # second lies inside first
    elif gap > 0:
        # a gap of k characters spread over k line breaks can only be "\n" * k
        if first.lines is None or second.lines is None or second.lines[0] - first.lines[1] != gap:
            return None
        text = first.text + "\n" * gap + second.text
    elif first.text[len(first.text) + gap:] == second.text[:-gap or None] or gap == 0:
        text = first.text + second.text[-gap:]
    else:
        return None
    lines = None
    if first.lines is not None and second.lines is not None:
        lines = (first.lines[0], max(first.lines[1], second.lines[1]))
    return Region(a.hit, text, (start, max(first_end, second_end)), lines, a.members + b.members)


def pack(question: str, hits: Sequence[Hit], embedder: Embedder | None,
         options: PackingOptions = PackingOptions()) -> list[Hit]:
    """The packed sources for ``question``, best first: the excerpt of each hit closest to the
    question, excerpts of a file that overlap or touch merged into one, near-duplicates dropped.
    Each is a copy of its best hit with ``text``, ``chars`` and ``lines`` narrowed to the
    excerpt (see the module docstring). ``embedder`` may be ``None``: the lexical signal alone
    then picks the sentences."""
    return _Packer(question, hits, embedder, options).pack(len(hits))


def build_packed_prompt(model: ChatModel, question: str, hits: Sequence[Hit], embedder: Embedder | None,
                        options: PackingOptions = PackingOptions(), *, reserve: int,
                        history: Sequence[Turn] = (), answer_prefix: str = "") -> BuiltPrompt:
    """:func:`runtime.rag.prompt.build_prompt` of the packed ``hits``, packing no more of them
    than the prompt can hold (see the module docstring): with at most :data:`FIRST_ROUND` hits,
    exactly ``build_prompt(model, question, pack(...), ...)``."""
    packer = _Packer(question, hits, embedder, options)
    considered = min(len(hits), FIRST_ROUND)
    while True:
        built = build_prompt(model, question, packer.pack(considered), reserve=reserve, history=history,
                             answer_prefix=answer_prefix)
        if built.dropped_sources or considered >= len(hits):
            break
        considered = min(len(hits), 2 * considered)
    if considered < len(hits):  # one notice for what was left out, packed or not
        dropped = f"{built.dropped_sources} of "
        packed = len(built.sources) + built.dropped_sources
        notice = (f"{built.dropped_sources} of {packed} sources did not fit the context ({built.n_ctx} tokens, "
                  f"{built.reserve} kept for the answer) and were left out, and the {len(hits) - considered} "
                  f"lowest-ranked of {len(hits)} retrieved passages were not packed (the context was already "
                  "full); raise --ctx or lower -k / --max-tokens")
        built = replace(built, notices=[notice, *(n for n in built.notices if not n.startswith(dropped))])
    return built


class _Packer:
    """Packs a growing prefix of ``hits``, splitting and scoring each hit once."""

    def __init__(self, question: str, hits: Sequence[Hit], embedder: Embedder | None,
                 options: PackingOptions) -> None:
        self.question, self.hits, self.embedder, self.options = question, hits, embedder, options
        self.split: list[list[Span]] = []
        self.scores: list[list[float]] = []

    def pack(self, n: int) -> list[Hit]:
        """:func:`pack` of the first ``n`` hits."""
        hits, options = self.hits[:n], self.options
        fresh = [sentences(hit.text, prose=True) for hit in hits[len(self.split):]]
        self.scores += _score(self.question, fresh, self.embedder, options)
        self.split += fresh
        top = max((max(row) for row in self.scores[:n] if row), default=0.0)
        excerpts = [_excerpt(Region(hit, hit.text, hit.chars, hit.lines), spans, hit_scores, options,
                             wide=rank < options.widen_top)
                    for rank, (hit, spans, hit_scores) in enumerate(zip(hits, self.split, self.scores))
                    if rank < options.always_keep
                    or max(hit_scores, default=0.0) >= options.min_relative_score * top]
        return _drop_duplicates([_narrow(region, 0, len(region.text)) for region in merge_hits(excerpts)],
                                options.duplicate_similarity)


def _drop_duplicates(excerpts: list[Hit], threshold: float) -> list[Hit]:
    """``excerpts`` without those whose shingles are mostly a higher-ranked kept one's. Only
    kept excerpts sharing a shingle are compared (an index of shingle -> kept excerpts), so a
    long list of distinct excerpts costs what their shingles do, not its square."""
    packed: list[Hit] = []
    kept_shingles: list[set[tuple[str, ...]]] = []
    holders: defaultdict[tuple[str, ...], list[int]] = defaultdict(list)
    for excerpt in excerpts:
        shingles = _shingles(excerpt.text)
        shared: defaultdict[int, int] = defaultdict(int)
        for shingle in shingles:
            for kept in holders.get(shingle, ()):
                shared[kept] += 1
        if any(_share(count, shingles, kept_shingles[kept]) >= threshold for kept, count in shared.items()) \
                or (threshold <= 0 and packed):  # then even unrelated excerpts "resemble"
            continue
        for shingle in shingles:
            holders[shingle].append(len(kept_shingles))
        kept_shingles.append(shingles)
        packed.append(excerpt)
    return packed


def _share(common: int, a: set[Any], b: set[Any]) -> float:
    """:func:`_resemblance` of ``a`` and ``b`` given the size of their intersection."""
    if not a or not b:
        return 0.0
    return common / min(len(a), len(b))


def _score(question: str, split: list[list[Span]], embedder: Embedder | None,
           options: PackingOptions) -> list[list[float]]:
    """Each sentence's closeness to the question: ``lexical_weight * word share + (1 -
    lexical_weight) * cosine`` (the word share alone without an embedder)."""
    words = claim_words(question)
    texts = [s.text for spans in split for s in spans]
    # a heading names a subject, it does not answer: it goes into an excerpt only beside a sentence
    headings = [_HEADING.match(text) is not None for text in texts]
    flat = [len(words & claim_words(text)) / len(words) if words and not heading else 0.0
            for text, heading in zip(texts, headings)]
    if embedder is not None and texts:
        matrix = embedder.embed([question, *texts])
        cosines = (matrix[1:] @ matrix[0]).tolist()
        w = options.lexical_weight
        flat = [0.0 if heading else w * share + (1 - w) * float(cosine)
                for share, cosine, heading in zip(flat, cosines, headings)]
    scores, start = [], 0
    for spans in split:
        scores.append(flat[start:start + len(spans)])
        start += len(spans)
    return scores


def _excerpt(region: Region, spans: list[Span], scores: list[float], options: PackingOptions,
             *, wide: bool = True) -> Hit:
    """The region's hit narrowed to the chosen sentences (the whole region when it has at most
    as many sentences as an excerpt would hold). A ``wide`` excerpt (one of the best-ranked
    hits) has ``neighbours`` on each side; the others, their best sentence and ``rest_after``
    sentences after it."""
    if spans and not wide:
        best = max(range(len(spans)), key=lambda i: scores[i])
        return _narrow(region, spans[best].start, spans[min(len(spans) - 1, best + options.rest_after)].end)
    if len(spans) <= 1 + 2 * options.neighbours:
        first, last = 0, len(spans) - 1
    else:
        best = max(range(len(spans)), key=lambda i: scores[i])
        chosen = [i for i, s in enumerate(scores) if s >= options.keep_ratio * scores[best] and s > 0] or [best]
        first = max(0, min(chosen) - options.neighbours)
        last = min(len(spans) - 1, max(chosen) + options.neighbours)
        if last - first + 1 > options.max_sentences:  # far apart: the best with its neighbours
            first, last = max(0, best - options.neighbours), min(len(spans) - 1, best + options.neighbours)
    if not spans:
        return _narrow(region, 0, len(region.text))
    return _narrow(region, spans[first].start, spans[last].end)


def _narrow(region: Region, start: int, end: int) -> Hit:
    """A copy of the region's best hit holding ``region.text[start:end]``, with its span and lines."""
    text = region.text[start:end]
    chars = (region.chars[0] + start, region.chars[0] + end) if region.chars is not None else None
    lines = None
    if region.lines is not None:
        top = region.lines[0] + region.text.count("\n", 0, start)
        lines = (top, top + text.count("\n"))
    return replace(region.hit, text=text, chars=chars, lines=lines)


def _shingles(text: str, size: int = 3) -> set[tuple[str, ...]]:
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < size:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + size]) for i in range(len(words) - size + 1)}


def _resemblance(a: set[Any], b: set[Any]) -> float:
    """How much of the smaller shingle set the other holds (1.0: one excerpt repeats the other)."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))
