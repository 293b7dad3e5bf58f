"""How an answer and a retrieval are scored against what a question expects (issue 9's measures,
shared by ``rt eval`` and benchmarks/bench_answers.py).

- *containment*: SQuAD's normalisation (lower case, no punctuation, no articles), then a gold
  answer must appear in the answer as whole words; rt's "According to [n]," lead, the [n] markers
  and source labels the model copied are removed first, so a label's digits never "contain" a
  numeric answer;
- *source match*: a retrieved passage comes from the expected file when its path equals the
  expected one or ends with it at a folder boundary (``notes/lease.md`` matches
  ``/home/me/notes/lease.md``, not ``/home/me/oldlease.md``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = re.compile(r"[^\w\s]|_")
_CITES = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
_LEAD = re.compile(r"^\s*According to\s*(?:\[\d+(?:\s*,\s*\d+)*\])?\s*,?", re.I)


def normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", _PUNCTUATION.sub(" ", text.lower())).split())


def answer_words(answer: str, labels: Sequence[str]) -> str:
    """What the answer says, normalised: without rt's "According to [n]," lead, without [n]
    markers and without source labels the model copied from the prompt ("(Rhine.md, line 12)")."""
    text = _CITES.sub(" ", _LEAD.sub(" ", answer))
    for label in labels:
        text = text.replace(label, " ")
    return normalize(text)


def contains(said: str, answers: Sequence[str]) -> bool:
    """Containment: a normalised gold answer appears in the normalised answer as whole words."""
    padded = f" {said} "
    return any(gold and f" {gold} " in padded for gold in (normalize(a) for a in answers))


def same_source(path: str, expected: str) -> bool:
    """Whether ``path`` is the expected file: equal, or ending with it at a folder boundary
    (either separator, so a question file written on Windows matches)."""
    path, expected = path.replace("\\", "/"), expected.replace("\\", "/").strip("/")
    return bool(expected) and (path == expected or path.endswith("/" + expected))


def first_rank(paths: Sequence[str], expected: str) -> int | None:
    """The 1-based rank of the first path that is the expected file, or ``None``."""
    return next((i for i, p in enumerate(paths, 1) if same_source(p, expected)), None)
