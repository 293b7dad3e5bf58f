"""Retrieval for follow-up questions in a conversation.

"What does --repack do?" then "And how much memory does it cost?": the second question alone
names neither --repack nor anything else that finds the repack passage, so it retrieved the
Windows notes. Before retrieving, a chat question is extended with the subject of the questions
asked just before it: the word of an earlier question that the index has a document about
(rare over the index, concentrated in one document: "repack", "Rhine"), when the new question
does not already contain it. One word only, so a question that changes the subject still finds
its own passages first (measured on follow-up pairs and topic switches built from the eval set:
benchmarks/bench_retrieval.py, docs/retrieval.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

# Words a question is made of that say nothing about its subject.
_QUESTION_WORDS = frozenset(
    "a an and are as at be but by can could do does did for from has have how i if in into is it its "
    "me my no not of on or our so than that the their them then there these they this to was we were "
    "what when where which who whom whose why will with would you your also about again any much many "
    "more most some such tell explain describe mean means name named called else other one ones".split()
)
# Pronouns that point back at the conversation: a question holding one is about the earlier
# subject even when it names a subject word of its own ("how much memory does it cost?").
_REFERRING = frozenset("it its they them".split())
_WORD = re.compile(r"[\w][\w.+-]*[\w]|[\w]")


class TermStore(Protocol):
    """What this module needs of an index (:class:`~runtime.index.Index`, or a store inside one of
    its read snapshots): two questions of its terms API."""

    def counts(self) -> tuple[int, int]: ...

    def document_spread(self, word: str) -> tuple[int, int]: ...


def content_words(text: str) -> list[str]:
    """The words of ``text`` that can carry its subject, lower-cased, in order, without repeats."""
    words = (w.lower() for w in _WORD.findall(text))
    return list(dict.fromkeys(w for w in words if w not in _QUESTION_WORDS and (len(w) > 2 or w.isdigit())))


def refers_back(text: str) -> bool:
    """Whether ``text`` holds a pronoun that points back at the conversation ("it", "they")."""
    return any(w.lower() in _REFERRING for w in _WORD.findall(text))


def topic_terms(text: str, store: TermStore, *, limit: int = 1, max_share: float = 0.12,
                min_concentration: float = 0.5, min_chunks: int = 3) -> list[str]:
    """The content words of ``text`` that name a subject of the index, strongest first.

    A subject word is in at most ``max_share`` of the chunks (not a common word) and at least
    ``min_concentration`` of those, and ``min_chunks`` or more, lie in one document (a document
    is about it, rather than mentioning it in passing); the more chunks of that document hold
    it, the stronger. "repack"
    qualifies on rt's docs (memory.md); the rarest word of a question often does not: "Lake
    Constance" appears in one paragraph, and carrying it pulled follow-ups to that paragraph
    (measured: benchmarks/bench_retrieval.py).
    """
    total = store.counts()[1]
    scored = []
    for word in content_words(text):
        count, in_top_document = store.document_spread(word)
        if (0 < count <= max(1, max_share * total) and in_top_document >= min_chunks
                and in_top_document >= min_concentration * count):
            scored.append((in_top_document, word))
    scored.sort(key=lambda pair: -pair[0])
    return [word for _, word in scored[:limit]]


def contextual_query(question: str, earlier: Sequence[str], store: TermStore, *, turns: int = 2,
                     limit: int = 1) -> str:
    """``question`` followed by the subject terms (:func:`topic_terms`) of the last ``turns``
    earlier questions, most recent first, that it does not already contain; ``question`` itself
    when there are none, or when it names a subject of its own and no pronoun points back (it
    changes the subject: carrying the old one cost 4-7 points of hit@1 on topic switches, 1 point
    with this check)."""
    if topic_terms(question, store) and not refers_back(question):
        return question
    own = set(content_words(question))
    extra: list[str] = []
    for before in reversed(earlier[-turns:]):
        for term in topic_terms(before, store, limit=limit):
            if term not in own and term not in extra and len(extra) < limit:
                extra.append(term)
    return f"{question} {' '.join(extra)}" if extra else question
