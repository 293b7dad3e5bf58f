"""Evidence for every cited claim: which sentence of the cited source supports each sentence.

After generation the answer is split into sentences (:func:`split_claims`); each keeps the
source numbers it cites. For every claim, the sentences of its cited sources (and pairs of
adjacent ones) are scored by lexical overlap (the share of the claim's content words they hold)
and by embedding similarity with the index's own embedder; the best is the claim's evidence.
A claim is ``supported`` when that score reaches :class:`~runtime.rag.config.EvidenceOptions`'
``min_support``. A claim that cites nothing, cites a number that was not given, or whose cited
sources hold nothing close enough is unsupported: it is never passed silently as cited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from runtime.rag.config import EvidenceOptions
from runtime.rag.coverage import QUESTION_WORDS
from runtime.rag.prompt import SourceLike, parse_citations

if TYPE_CHECKING:
    from runtime.index.embedders.base import Embedder

_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_LEAD = re.compile(r"^\s*(?:according to|as stated in|as per|from|in)\s*(?:source\s*)?\[\d+(?:\s*,\s*\d+)*\]\s*,?\s*",
                   re.I)
# A sentence ends at . ! ? (or a line break) followed by space; "e.g." or "3.2" do not end one.
_END = r"(?<!\b[A-Za-z])(?<!\be\.g)(?<!\bi\.e)[.!?](?=\s|$)"
_SENTENCE = re.compile(r"[^\n]*?(?:" + _END + r"|(?=\n)|$)")
# In a document a sentence may wrap onto the next line; a blank line, a heading, a list item or
# a table row starts a new block, and a heading is a block of its own.
_BLOCK_MARK = re.compile(r"[ \t]*(?:$|#|[-*+] |\d+[.)] |\||[=\-~^]{3,}[ \t]*$)")
_WRAPPED_SENTENCE = re.compile(r"[\s\S]*?(?:" + _END + r"|$)")
_WORD = re.compile(r"\w+", re.UNICODE)
_LEADING_CITES = re.compile(r"^(\s*\[\d+(?:\s*,\s*\d+)*\])+")


@dataclass(frozen=True)
class Evidence:
    """A passage of cited source ``n`` that supports a claim, with where it is in the file."""

    n: int
    text: str
    path: str
    lines: tuple[int, int] | None
    page: int | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "text": self.text, "path": self.path,
                "lines": list(self.lines) if self.lines is not None else None,
                "page": self.page, "score": round(self.score, 4)}


@dataclass(frozen=True)
class Claim:
    """One sentence of the answer, the sources it cites, and the evidence found for it."""

    text: str
    cites: list[int]
    evidence: list[Evidence] = field(default_factory=list)
    supported: bool = False
    score: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "cites": list(self.cites),
                "evidence": [e.to_dict() for e in self.evidence],
                "supported": self.supported, "score": round(self.score, 4)}


@dataclass(frozen=True)
class Span:
    """A sentence of a text: its characters ``[start, end)``."""

    text: str
    start: int
    end: int


def sentences(text: str, *, prose: bool = False) -> list[Span]:
    """The sentences of ``text`` with their character offsets, empty ones skipped. A line break
    ends a sentence, unless ``prose`` (a document's text, where sentences wrap within a block)."""
    if not prose:
        return _spans(text, _SENTENCE, 0)
    spans: list[Span] = []
    for start, end in _blocks(text):
        spans += _spans(text[start:end], _WRAPPED_SENTENCE, start)
    return spans


def _spans(text: str, pattern: re.Pattern[str], offset: int) -> list[Span]:
    spans = []
    for match in pattern.finditer(text):
        piece = match.group(0)
        stripped = piece.strip()
        if not stripped or not _WORD.search(stripped):
            continue
        start = offset + match.start() + piece.index(stripped[0])
        spans.append(Span(stripped, start, start + len(stripped)))
    return spans


def _blocks(text: str) -> list[tuple[int, int]]:
    """Character ranges of a document's blocks: paragraphs, headings, list items, table rows."""
    blocks: list[tuple[int, int]] = []
    start, position, alone = 0, 0, False
    for line in text.splitlines(keepends=True):
        if position > start and (alone or _BLOCK_MARK.match(line)):
            blocks.append((start, position))
            start = position
        alone = line.lstrip().startswith("#")
        position += len(line)
    blocks.append((start, len(text)))
    return blocks


def split_claims(answer: str) -> list[tuple[str, list[int]]]:
    """``(sentence, cited numbers)`` for each sentence of an answer. Citations written after the
    full stop (``... 60 days. [1]``) belong to the sentence before them."""
    claims: list[tuple[str, list[int]]] = []
    for span in sentences(answer):
        text = span.text
        leading = _LEADING_CITES.match(text)
        if leading and claims:
            before, cites = claims[-1]
            claims[-1] = (before + " " + leading.group(0).strip(), cites + [n for n in parse_citations(leading.group(0))
                                                               if n not in cites])
            text = text[leading.end():].strip()
        if not _WORD.search(_CITATION.sub("", text)):
            continue
        claims.append((text, parse_citations(text)))
    return claims


def claim_words(text: str) -> set[str]:
    """Content words of a sentence, without citations; a crude stem so "descale" meets "descaling"."""
    bare = _CITATION.sub(" ", text)
    return {_stem(w) for w in _WORD.findall(bare.lower()) if w not in QUESTION_WORDS}


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def bare_claim(text: str) -> str:
    """The claim's words as a reader sees them: without "According to [1]," and without [n]."""
    return _CITATION.sub("", _LEAD.sub("", text)).strip()


class CitedSource(SourceLike, Protocol):
    """A source given to the model, numbered as the answer cites it (:class:`runtime.rag.answer.Source`;
    a protocol, so that the answer record may name this module's :class:`Claim` without a cycle)."""

    @property
    def n(self) -> int: ...


def _candidates(source: CitedSource) -> list[tuple[str, int, int]]:
    """Sentences of a source and pairs of adjacent ones, as ``(text, start, end)`` offsets."""
    spans = sentences(source.text, prose=True)
    found = [(s.text, s.start, s.end) for s in spans]
    for a, b in zip(spans, spans[1:]):
        found.append((source.text[a.start:b.end], a.start, b.end))
    return found


def _lines_of(source: CitedSource, start: int, end: int) -> tuple[int, int] | None:
    if source.lines is None:
        return None
    first = source.lines[0] + source.text.count("\n", 0, start)
    return first, first + source.text.count("\n", start, end)


def check_claims(answer: str, sources: Sequence[CitedSource], embedder: Embedder | None,
                 options: EvidenceOptions = EvidenceOptions()) -> list[Claim]:
    """The claims of ``answer`` with their evidence in the cited ``sources`` (numbered from 1).

    ``embedder`` is the index's embedding model (``None``: lexical overlap alone decides).
    """
    by_number = {s.n: s for s in sources}
    split = split_claims(answer)
    cited: dict[int, list[tuple[str, int, int]]] = {
        n: _candidates(by_number[n]) for n in {n for _, cites in split for n in cites} if n in by_number}
    vectors = _embed(split, cited, embedder)
    claims = []
    for i, (text, cites) in enumerate(split):
        words = claim_words(_LEAD.sub("", text))
        scored: list[Evidence] = []
        for n in cites:
            for j, (candidate, start, end) in enumerate(cited.get(n, [])):
                overlap = len(words & claim_words(candidate)) / len(words) if words else 0.0
                cosine = vectors(i, n, j)
                score = overlap if cosine is None else (
                    options.lexical_weight * overlap + (1 - options.lexical_weight) * cosine)
                source = by_number[n]
                scored.append(Evidence(n, " ".join(candidate.split()), source.path, _lines_of(source, start, end),
                                       source.page, score))
        scored.sort(key=lambda e: (-e.score, len(e.text)))
        best = scored[0].score if scored else 0.0
        claims.append(Claim(text=text, cites=cites, evidence=scored[:options.max_evidence],
                            supported=best >= options.min_support, score=best))
    return claims


def _embed(split: list[tuple[str, list[int]]], cited: dict[int, list[tuple[str, int, int]]],
           embedder: Embedder | None) -> Any:
    """A lookup ``(claim i, source n, candidate j) -> cosine`` (``None`` without an embedder)."""
    if embedder is None or not split or not cited:
        return lambda i, n, j: None
    texts = [bare_claim(text) or text for text, _ in split]
    order = [(n, j) for n, found in cited.items() for j in range(len(found))]
    texts += [cited[n][j][0] for n, j in order]
    matrix = embedder.embed(texts)
    claims, candidates = matrix[:len(split)], matrix[len(split):]
    row = {key: k for k, key in enumerate(order)}
    cosines = claims @ candidates.T

    def lookup(i: int, n: int, j: int) -> float | None:
        return float(cosines[i, row[(n, j)]])

    return lookup


def supported_share(claims: Sequence[Claim]) -> float | None:
    """The share of claims that are supported (``None`` when there are none)."""
    return sum(c.supported for c in claims) / len(claims) if claims else None
