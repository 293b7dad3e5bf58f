"""What a retrieval-augmented answer returns: the text, its sources, token counts and timings.

These are plain frozen dataclasses; :meth:`Answer.to_dict` is what ``rt ask --json`` prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from runtime.rag.prompt import location_label

if TYPE_CHECKING:
    from runtime.rag.coverage import Coverage
    from runtime.rag.evidence import Claim


@dataclass(frozen=True)
class Source:
    """A retrieved passage that was given to the model, numbered as the answer cites it.

    ``score`` is the index's ranking score (reciprocal-rank fusion in hybrid mode);
    ``similarity`` is the cosine similarity between the question and the passage (``None`` in
    keyword mode), the number shown to people and used for the coverage check.
    """

    n: int
    path: str
    page: int | None
    lines: tuple[int, int] | None
    score: float
    similarity: float | None
    text: str
    location: str | None = None  # "slide 7", "Sheet1 rows 2-40", a heading path (see Hit)

    @property
    def label(self) -> str:
        """``path, lines a-b`` or ``path, page p`` or ``path, slide 7``."""
        return location_label(self.path, self.page, self.lines, self.location)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lines"] = list(self.lines) if self.lines is not None else None
        return data


@dataclass(frozen=True)
class Usage:
    """Token counts of one answer. ``cached_tokens`` were reused from the KV cache;
    ``draft_tokens`` were guessed by prompt lookup and ``accepted_tokens`` of them kept."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Timings:
    """Seconds spent in each step of one answer.

    ``retrieval`` is ``query_embedding`` plus ``search`` (the split is known when the RAG
    opened the index itself, else ``query_embedding`` is 0 and ``search`` is all of it).
    """

    retrieval: float = 0.0
    query_embedding: float = 0.0
    search: float = 0.0
    coverage: float = 0.0
    prompt_building: float = 0.0
    prompt_processing: float = 0.0
    generation: float = 0.0
    evidence: float = 0.0
    total: float = 0.0


@dataclass(frozen=True)
class Answer:
    """One answer and everything needed to check it.

    ``covered`` is false when the documents do not cover the question (``coverage`` says why,
    with the signals it was decided from); then ``answer`` says so, unless it was answered
    anyway (``from_documents`` false, no sources). ``sources`` are exactly the passages given
    to the model, numbered as cited; ``citations`` the numbers the answer cites; ``claims``
    each sentence of the answer with the sentence of its cited source that supports it (or
    not); ``dropped`` counts retrieved passages left out because they did not fit the context
    window, ``dropped_turns`` earlier chat turns left out. An answer from the model alone
    (:mod:`runtime.rag.direct`, ``rt ask --no-rag``) has the same fields: no sources, and
    ``covered``, ``best_similarity`` and ``threshold`` ``None`` (nothing was retrieved).
    """

    question: str
    answer: str
    covered: bool | None
    from_documents: bool
    sources: list[Source]
    citations: list[int]
    dropped: int
    dropped_turns: int
    best_similarity: float | None
    threshold: float | None
    usage: Usage
    timings: Timings
    finish_reason: str
    notices: list[str] = field(default_factory=list)
    coverage: Coverage | None = None
    claims: list[Claim] = field(default_factory=list)

    @property
    def supported(self) -> bool | None:
        """Whether at least one claim is supported by the source it cites (``None`` when the
        answer is not from the documents)."""
        if not self.from_documents:
            return None
        return any(claim.supported for claim in self.claims)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``rt ask --json`` prints)."""
        return {
            "question": self.question,
            "answer": self.answer,
            "covered": self.covered,
            "from_documents": self.from_documents,
            "sources": [s.to_dict() for s in self.sources],
            "citations": self.citations,
            "dropped": self.dropped,
            "dropped_turns": self.dropped_turns,
            "best_similarity": self.best_similarity,
            "threshold": self.threshold,
            "usage": asdict(self.usage) | {"total_tokens": self.usage.total_tokens},
            "timings": asdict(self.timings),
            "finish_reason": self.finish_reason,
            "notices": self.notices,
            "coverage": self.coverage.to_dict() if self.coverage is not None else None,
            "claims": [claim.to_dict() for claim in self.claims],
            "supported": self.supported,
        }
