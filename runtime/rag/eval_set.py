"""The questions ``rt eval`` asks an index: read from a JSONL file, or made from the index itself.

A question file holds one JSON object a line: ``"question"``, and ``"source"`` (a path, or its
end, that a retrieved passage must come from) and/or ``"answer"`` (text a good answer contains),
or ``"answerable": false`` for a question the documents do not answer.

Without a file, :func:`generate` makes the set from the index, deterministically (``method
"terms"``): a seeded sample of chunks across files; from each, the sentence whose informative
words are rarest in the index; the question names the sentence's rarest words ("What can you
tell me about X, Y and Z?") and its answer is another rare word of that sentence, which the
question does not give away. Every word of the template is a question word
(:data:`~runtime.rag.coverage.QUESTION_WORDS`): an earlier template, "What do the documents say
about", weighed "documents" and "say" as key terms, rare in many indexes (on the Reddit posts
"documents" is in 14 of 2,356 chunks), so every made question held a term its passage lacks.
A model as small as rt's embedded 135M one writes worse questions than this, so no model is
used. The unanswerable side leaves whole files out: a share
of the files is held out of the search (:attr:`GeneratedSet.held_out`), and questions are made
from them the same way, so they are of the same kind as the documents but absent from what rt
can see. Each question is checked before use: its answer sentence must be in its chunk, and
no chunk of another file (of a file still searched, for held-out ones) may hold all of its
words and its answer, which would make it answerable elsewhere by a simple term check; the
number dropped is reported.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.errors import InputError
from runtime.rag.coverage import idf, informative_terms

if TYPE_CHECKING:
    from runtime.index import Index

METHOD = "terms"
QUESTION_PREFIX = "What can you tell me about"  # question words only: the template weighs nothing
HELD_OUT_SHARE = 0.2  # of the files, left out of the search for the unanswerable questions
MAX_LINE = 1 << 20  # a question file's line longer than this is refused, not parsed
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")


@dataclass(frozen=True)
class EvalQuestion:
    """One question and what a good result is (see the module docstring)."""

    question: str
    source: str | None = None
    answer: str | None = None
    answerable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class GeneratedSet:
    """Questions made from an index, the files held out of the search, and how they were made."""

    questions: list[EvalQuestion]
    held_out: list[str]
    seed: int
    method: str = METHOD
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> questions dropped

    def save(self, path: Path) -> None:
        """Write the set as JSON lines after one header line (``{"generated": {...}}``)."""
        from runtime.fsutil import atomic_write_bytes

        header = {"generated": {"seed": self.seed, "method": self.method, "held_out": self.held_out,
                                "dropped": self.dropped}}
        lines = [json.dumps(header, ensure_ascii=False)] + [json.dumps(q.to_dict(), ensure_ascii=False)
                                                            for q in self.questions]
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))

    @classmethod
    def load(cls, path: Path) -> GeneratedSet:
        lines = path.read_text(encoding="utf-8").splitlines()
        try:
            header = json.loads(lines[0])["generated"]
            return cls([_question(json.loads(line), path, n) for n, line in enumerate(lines[1:], 2) if line.strip()],
                       list(header["held_out"]), int(header["seed"]), header["method"], dict(header["dropped"]))
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path} is not a question set rt eval wrote ({exc})",
                             hint="delete it and run rt eval again to make a new one") from exc


def read_questions(path: Path) -> list[EvalQuestion]:
    """The questions of a JSONL file; a bad line is an :class:`InputError` naming its number."""
    try:
        handle = path.open("r", encoding="utf-8-sig", errors="strict")
    except OSError as exc:
        raise InputError(f"cannot read the question file {path}: {exc.strerror or exc}") from exc
    questions = []
    with handle:
        try:
            for n, line in enumerate(_bounded_lines(handle, path), 1):
                if line.strip():
                    try:
                        value = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise InputError(f"{path} line {n} is not JSON ({exc.msg})") from exc
                    questions.append(_question(value, path, n))
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text (byte {exc.start})") from exc
    if not questions:
        raise InputError(f"{path} holds no question", hint='one JSON object a line: {"question": "...", '
                                                            '"source": "file.md", "answer": "..."}')
    return questions


def _bounded_lines(handle: Any, path: Path) -> Iterator[str]:
    while line := handle.readline(MAX_LINE + 1):
        if len(line) > MAX_LINE:
            raise InputError(f"{path} has a line longer than {MAX_LINE:,} characters")
        yield line


def _question(value: object, path: Path, n: int) -> EvalQuestion:
    where = f"{path} line {n}"
    if not isinstance(value, dict) or not isinstance(value.get("question"), str) or not value["question"].strip():
        raise InputError(f'{where} needs a "question" string')
    source, answer, answerable = value.get("source"), value.get("answer"), value.get("answerable", True)
    if source is not None and not isinstance(source, str) or answer is not None and not isinstance(answer, str):
        raise InputError(f'{where}: "source" and "answer" must be strings')
    if not isinstance(answerable, bool):
        raise InputError(f'{where}: "answerable" must be true or false')
    if answerable and not source and not answer:
        raise InputError(f'{where} says neither "source" nor "answer" (or "answerable": false)',
                         hint="say what a good result is, or that the documents do not answer it")
    return EvalQuestion(value["question"].strip(), source or None, answer or None, answerable)


# --- generating a set from the index -------------------------------------------------------------
def generate(index: Index, n: int, *, seed: int = 0, held_out_share: float = HELD_OUT_SHARE) -> GeneratedSet:
    """About ``n`` checked questions (a quarter of them unanswerable) made from ``index``."""
    rng = random.Random(seed)
    by_file = index.chunk_ids_by_document()
    files = sorted(by_file)
    if len(files) < 2:
        raise InputError(f"rt eval needs an index of at least 2 files to make questions; this one has {len(files)}",
                         hint="index more documents, or give your own questions with --questions FILE.jsonl")
    rng.shuffle(files)
    n_held = min(len(files) - 1, max(1, round(len(files) * held_out_share)))
    held_out, searched = sorted(files[:n_held]), files[n_held:]
    rarity = _Rarity(index, index.stats().chunks)
    dropped: dict[str, int] = {}
    questions: list[EvalQuestion] = []
    want_unanswerable = max(1, n // 4)
    for group, answerable, wanted in ((held_out, False, want_unanswerable), (searched, True, n - want_unanswerable)):
        made = 0
        for chunk_id in _sample_chunks(group, by_file, rng, wanted * 3):
            if made >= wanted:
                break
            row = index.chunks([chunk_id])[chunk_id]
            question = _question_from(row.text, row.path, rarity, answerable)
            reason = "no sentence with enough rare words" if question is None else _check(
                question, row.text, row.path, index, held_out)
            if reason:
                dropped[reason] = dropped.get(reason, 0) + 1
                continue
            assert question is not None
            questions.append(question)
            made += 1
    return GeneratedSet(questions, held_out, seed, METHOD, dropped)


def _sample_chunks(files: Sequence[str], by_file: dict[str, list[int]], rng: random.Random,
                   limit: int) -> Iterator[int]:
    """Chunks spread across ``files``: one per file in turn, in a seeded order, up to ``limit``."""
    pools = {f: rng.sample(by_file[f], len(by_file[f])) for f in files}
    order = list(files)
    given = 0
    while given < limit and any(pools.values()):
        for f in order:
            if pools[f] and given < limit:
                given += 1
                yield pools[f].pop()


class _Rarity:
    """Inverse document frequency of words over the index's chunks, looked up once each."""

    def __init__(self, index: Index, n_chunks: int) -> None:
        self.index, self.n_chunks = index, n_chunks
        self.cache: dict[str, float] = {}

    def __call__(self, word: str) -> float:
        if word not in self.cache:
            frequency = self.index.chunks_matching(word)
            self.cache[word] = idf(frequency, self.n_chunks)
        return self.cache[word]


def _question_from(text: str, path: str, rarity: _Rarity, answerable: bool) -> EvalQuestion | None:
    best: tuple[float, str, list[str]] | None = None
    for sentence in (m.group().strip() for m in _SENTENCE.finditer(text)):
        # words of three letters or more (or with a digit): "rm" or "hf" make no topic
        words = [w for w in informative_terms(sentence) if len(w) >= 3 or any(c.isdigit() for c in w)]
        if len(sentence.split()) < 6 or len(words) < 4:
            continue
        ranked = sorted(words, key=lambda w: (-rarity(w), w))
        score = sum(rarity(w) for w in ranked[:4])
        if best is None or score > best[0]:
            best = (score, sentence, ranked)
    if best is None:
        return None
    _, sentence, ranked = best
    answer, asked = ranked[0], ranked[1:4]
    asked.sort(key=lambda w: sentence.lower().find(w))  # in the sentence's order: reads as a topic
    topic = f"{', '.join(asked[:-1])} and {asked[-1]}"
    return EvalQuestion(f"{QUESTION_PREFIX} {topic}?", path if answerable else None,
                        answer if answerable else None, answerable)


def _check(question: EvalQuestion, chunk_text: str, path: str, index: Index, held_out: Sequence[str]) -> str | None:
    """Why ``question`` must be dropped, or ``None`` (see the module docstring)."""
    words = informative_terms(question.question)
    if question.answer is not None and question.answer.lower() not in chunk_text.lower():
        return "answer not in its chunk"
    wanted = words + ([question.answer] if question.answer else [])
    rows = index.chunks(index.chunks_holding_all(wanted, limit=50))
    elsewhere = [r for r in rows.values() if r.path != path and r.path not in held_out]
    return "answerable from another file" if elsewhere else None
