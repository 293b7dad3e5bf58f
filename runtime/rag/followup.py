"""Retrieval for follow-up questions in a conversation.

"What does --repack do?" then "And how much memory does it cost?": the second question alone
names neither --repack nor anything else that finds the repack passage, so it retrieved the
Windows notes. Before retrieving, a chat question is extended with the informative terms of
the questions asked just before it: words that are rare in the index (high inverse document
frequency: names, options, numbers) and that the new question does not already contain. Common
words are left out, so a question that changes the subject still finds its own passages first
(measured on follow-up pairs and topic switches built from the eval set:
benchmarks/bench_retrieval.py, docs/retrieval.md).
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Sequence
from typing import Protocol

# Words a question is made of that say nothing about its subject.
_QUESTION_WORDS = frozenset(
    "a an and are as at be but by can could do does did for from has have how i if in into is it its "
    "me my no not of on or our so than that the their them then there these they this to was we were "
    "what when where which who whom whose why will with would you your also about again any much many "
    "more most some such tell explain describe mean means name named called else other one ones".split()
)
_WORD = re.compile(r"[\w][\w.+-]*[\w]|[\w]")


class TermStore(Protocol):
    """What this module needs of an index's store: its SQLite connection (FTS5 table ``chunks_fts``)."""

    db: sqlite3.Connection


def content_words(text: str) -> list[str]:
    """The words of ``text`` that can carry its subject, lower-cased, in order, without repeats."""
    words = (w.lower() for w in _WORD.findall(text))
    return list(dict.fromkeys(w for w in words if w not in _QUESTION_WORDS and (len(w) > 2 or w.isdigit())))


def informative_terms(text: str, store: TermStore, *, limit: int = 4, max_share: float = 0.12) -> list[str]:
    """The rarest content words of ``text`` that occur in the index, rarest first.

    A word found in more than ``max_share`` of the chunks (or in none) is not informative.
    """
    total = _chunk_count(store)
    if total == 0:
        return []
    scored = []
    for word in content_words(text):
        count = _document_frequency(store, word)
        if 0 < count <= max(1, max_share * total):
            scored.append((math.log(total / count), word))
    scored.sort(key=lambda pair: -pair[0])
    return [word for _, word in scored[:limit]]


def contextual_query(question: str, earlier: Sequence[str], store: TermStore, *, turns: int = 2,
                     limit: int = 4) -> str:
    """``question`` followed by the informative terms of the last ``turns`` earlier questions
    (most recent first) that it does not already contain; ``question`` itself when there are none."""
    own = set(content_words(question))
    extra: list[str] = []
    for before in reversed(earlier[-turns:]):
        for term in informative_terms(before, store, limit=limit):
            if term not in own and term not in extra and len(extra) < limit:
                extra.append(term)
    return f"{question} {' '.join(extra)}" if extra else question


def _chunk_count(store: TermStore) -> int:
    return int(store.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])


def _document_frequency(store: TermStore, word: str) -> int:
    phrase = '"' + word.replace('"', '""') + '"'
    try:
        return int(store.db.execute("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH ?",
                                    (phrase,)).fetchone()[0])
    except sqlite3.OperationalError:  # a word FTS5 cannot parse as a phrase
        return 0
