"""Retrieval-augmented prompts that fit the context window, never silently truncated.

A prompt is a :class:`~runtime.llm.types.Prompt`: chat messages and the answer's first words,
which the model renders with its own chat template (a remote model sends the messages):

1. a system message telling the model to answer only from the numbered sources and to cite them
   as [1], [2];
2. earlier turns of a chat (questions and answers, without their sources), oldest first;
3. the last user message: the question, the numbered sources (path and page or lines), the
   question again, and a reminder to cite; the answer is started for the model with
   :data:`ANSWER_PREFIX`.

The order keeps the start of the prompt stable from one chat turn to the next (system, then
history), so the model reuses its KV cache for that prefix; only the new sources and the new
question are processed each turn.

Budgeting counts the tokens of the rendered prompt with the model's own tokenizer
(``model.count_tokens(prompt)``): prompt tokens plus the reserve for the answer (``max_tokens``)
must fit ``n_ctx``. When they do not, the oldest chat turns go first (down to the last one), then
the lowest-ranked sources (down to one), then the last turn; what was dropped is reported. When
even the best source does not fit beside the question (or the question alone does not fit),
:class:`ContextOverflowError` gives the numbers: an answer "from the documents" with no source in
its prompt would cite sources it never saw.

How many sources fit is found by galloping over the ranked list (1, 2, 4, ... sources, then a
binary search between the last prefix that fit and the first that did not), so the prompt is
rendered and counted O(log k) times and never holds much more than twice what fits: ``-k
100000`` once took 166 s, re-rendering and re-tokenizing the whole prompt for each dropped source.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from runtime.errors import ContextOverflowError
from runtime.llm.types import ChatModel, Prompt

SYSTEM_INSTRUCTION = (
    "You answer questions using only the numbered sources given with each question. "
    "After each fact, cite the source it comes from by its number in square brackets, "
    "like [1] or [2]. If the sources do not contain the answer, say that the documents "
    "do not cover it. Keep the answer short."
)

# Used with --answer-anyway when retrieval found nothing relevant: no sources are given.
SYSTEM_NO_SOURCES = "You are a helpful assistant. Answer the question briefly."

# The answer is started for the model, right after the chat template's generation prompt.
# Measured with SmolLM2-135M at temperature 0 on three questions over three passages: with the
# instruction alone it cited a source in 0 of 9 answers (three prompt wordings); started with
# "According to [" it cited one in every answer. Larger models follow the instruction anyway.
ANSWER_PREFIX = "According to ["

# Small models go on to copy the prompt's layout ("Question: ...", "[2] ...") after answering.
RAG_STOP = ("\nQuestion:", "\nSources:", "\n\n[", "\n\nSource [")

# count_tokens() adds no BOS; the engine adds one when the model wants it and the template did
# not write it.
BOS_MARGIN = 1

_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


class SourceLike(Protocol):
    """A retrieved passage (``runtime.index.Hit`` fits)."""

    @property
    def text(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def page(self) -> int | None: ...
    @property
    def lines(self) -> tuple[int, int] | None: ...


@dataclass(frozen=True)
class Turn:
    """One earlier question and its answer in a chat."""

    question: str
    answer: str


@dataclass(frozen=True)
class BuiltPrompt:
    """A prompt that fits and what budgeting did to get it under ``n_ctx``.

    ``prompt`` is what the model is given; ``text`` is how the model renders it (what was
    counted). ``sources`` are the passages actually in the prompt, numbered 1.. in that order;
    ``dropped_sources`` and ``dropped_turns`` count what did not fit.
    """

    prompt: Prompt
    text: str
    sources: list[SourceLike]
    history: list[Turn]
    prompt_tokens: int
    reserve: int
    n_ctx: int
    dropped_sources: int = 0
    dropped_turns: int = 0
    notices: list[str] = field(default_factory=list)

    @property
    def messages(self) -> list[dict[str, str]]:
        """The prompt's chat messages."""
        return [dict(m) for m in self.prompt.messages]

    @property
    def answer_prefix(self) -> str:
        """The text the answer starts with."""
        return self.prompt.answer_prefix


def where_label(page: int | None, lines: tuple[int, int] | None, location: str | None = None) -> str:
    """``slide 7`` (a reader's own ``location``), ``page 3``, ``lines 12-30``, ``line 7``, or ``""``
    when the location is unknown."""
    if location:
        return location
    if page is not None:
        return f"page {page}"
    if lines is not None:
        start, end = lines
        return f"line {start}" if start == end else f"lines {start}-{end}"
    return ""


def location_label(path: str, page: int | None, lines: tuple[int, int] | None,
                   location: str | None = None) -> str:
    """``docs/memory.md, lines 12-30`` or ``report.pdf, page 3`` or ``deck.pptx, slide 7`` or just the path."""
    where = where_label(page, lines, location)
    return f"{path}, {where}" if where else path


def short_paths(paths: Sequence[str]) -> list[str]:
    """``paths`` relative to their common folder: short labels that a small model copies well."""
    folders = [os.path.dirname(p) for p in paths if os.path.isabs(p)]
    if len(folders) != len(paths) or not folders:
        return list(paths)
    try:
        root = os.path.commonpath(folders)
    except ValueError:  # different drives on Windows
        return list(paths)
    return [os.path.relpath(p, root) for p in paths]


def format_sources(sources: Sequence[SourceLike]) -> str:
    """The numbered source block: ``[1] (memory.md, lines 3-9)`` followed by the passage text."""
    paths = short_paths([source.path for source in sources])
    blocks = []
    for n, (source, path) in enumerate(zip(sources, paths), start=1):
        label = location_label(path, source.page, source.lines, getattr(source, "location", None))
        blocks.append(f"[{n}] ({label})\n{source.text.strip()}")
    return "\n\n".join(blocks)


def user_message(question: str, sources: Sequence[SourceLike]) -> str:
    """The last user message: the question, the sources, the question again, a reminder to cite.

    Stating the question before and after the sources measured best with SmolLM2-135M: with
    it only after five sources, it answered the README's question with word salad about the
    source numbers; with it on both sides, it quoted the right passage and cited it.
    """
    question = question.strip()
    if not sources:
        return question
    return (
        f"Question: {question}\n\n"
        f"Sources:\n\n{format_sources(sources)}\n\n"
        f"Question: {question}\n"
        "Answer from the sources above and cite them like [1]."
    )


def strip_citations(text: str) -> str:
    """An answer without its [n] markers (history turns no longer carry their sources)."""
    opening = re.match(r"\s*According to " + _CITATION.pattern + r",?\s*", text)
    if opening:  # the answer prefix rt itself wrote
        rest = text[opening.end():]
        text = rest[:1].upper() + rest[1:]
    return re.sub(r"\s*" + _CITATION.pattern, "", text).strip()


def parse_citations(text: str) -> list[int]:
    """The source numbers cited in an answer, in order of first appearance: ``[2][1, 3]`` -> 2, 1, 3."""
    seen: list[int] = []
    for match in _CITATION.finditer(text):
        for part in match.group(1).split(","):
            n = int(part)
            if n not in seen:
                seen.append(n)
    return seen


def build_messages(
    question: str,
    sources: Sequence[SourceLike],
    history: Sequence[Turn] = (),
    *,
    system: str | None = None,
) -> list[dict[str, str]]:
    """System, then earlier turns (questions and cite-free answers), then sources and question."""
    if system is None:
        system = SYSTEM_INSTRUCTION if sources else SYSTEM_NO_SOURCES
    messages = [{"role": "system", "content": system}]
    for turn in history:
        # "Question: ..." as in the turn's own prompt, so the KV cache of that prompt is reused
        # up to the end of the question
        messages.append({"role": "user", "content": f"Question: {turn.question.strip()}"})
        messages.append({"role": "assistant", "content": strip_citations(turn.answer)})
    messages.append({"role": "user", "content": user_message(question, sources)})
    return messages


def build_prompt(
    model: ChatModel,
    question: str,
    sources: Sequence[SourceLike],
    *,
    reserve: int,
    history: Sequence[Turn] = (),
    system: str | None = None,
    answer_prefix: str = "",
) -> BuiltPrompt:
    """The prompt with as much as fits ``n_ctx`` by ``model``'s count, dropping the rest.

    ``reserve`` is the room kept for the answer (``max_tokens``); ``answer_prefix`` is text the
    answer starts with, appended after the template's generation prompt. Drops, in this order:
    oldest turns (keeping the last), lowest-ranked sources (keeping the best), the last turn.
    Raises :class:`ContextOverflowError` when the question alone, or with the best source, does
    not fit.
    """
    n_ctx = model.n_ctx
    budget = n_ctx - reserve - BOS_MARGIN  # the most prompt tokens that leave room for the answer
    candidates = list(sources)
    counted: dict[tuple[int, int], tuple[Prompt, int]] = {}

    def measure(turns: Sequence[Turn], n_sources: int) -> tuple[Prompt, int]:
        # turns are always a suffix of history, so their number identifies them
        key = (len(turns), n_sources)
        if key not in counted:
            prompt = Prompt(build_messages(question, candidates[:n_sources], turns, system=system), answer_prefix)
            counted[key] = (prompt, model.count_tokens(prompt))
        return counted[key]

    def fits(turns: Sequence[Turn], n_sources: int) -> bool:
        return measure(turns, n_sources)[1] <= budget

    kept_history = list(history)
    limit = len(candidates)
    while True:
        if candidates:
            kept = most_that_fit(lambda n: fits(kept_history, n), limit)
            if kept == limit:
                break
        else:
            kept = 0
            if fits(kept_history, 0):
                break
        if len(kept_history) > 1:
            kept_history.pop(0)
        elif kept:
            break
        elif kept_history:
            kept_history.pop()
            limit = min(limit, 1)  # the last turn went to make room for the best source
        elif candidates:
            tokens = measure(kept_history, 1)[1] + BOS_MARGIN
            alone = measure(kept_history, 0)[1] + BOS_MARGIN
            if alone + reserve > n_ctx:
                raise _question_overflow(alone, reserve, n_ctx)
            raise ContextOverflowError(
                f"the question with its best source needs {tokens} prompt tokens plus "
                f"{reserve} reserved for the answer, but the context holds {n_ctx}",
                tokens=tokens, n_ctx=n_ctx,
                hint="raise --ctx or lower --max-tokens",
            )
        else:
            raise _question_overflow(measure(kept_history, 0)[1] + BOS_MARGIN, reserve, n_ctx)

    prompt, tokens = measure(kept_history, kept)
    kept_sources = candidates[:kept]
    dropped_sources = len(sources) - len(kept_sources)
    dropped_turns = len(history) - len(kept_history)
    notices = []
    if dropped_sources:
        notices.append(
            f"{dropped_sources} of {len(sources)} sources did not fit the context "
            f"({n_ctx} tokens, {reserve} kept for the answer) and were left out; "
            "raise --ctx or lower -k / --max-tokens"
        )
    if dropped_turns:
        notices.append(
            f"the {dropped_turns} oldest chat turn(s) no longer fit the context ({n_ctx} tokens) "
            "and were left out"
        )
    return BuiltPrompt(
        prompt=prompt,
        text=model.render(prompt),
        sources=kept_sources,
        history=kept_history,
        prompt_tokens=tokens,
        reserve=reserve,
        n_ctx=n_ctx,
        dropped_sources=dropped_sources,
        dropped_turns=dropped_turns,
        notices=notices,
    )


def most_that_fit(fits: Callable[[int], bool], limit: int) -> int:
    """The largest ``n`` in ``1..limit`` with ``fits(n)``, 0 when not even 1 fits; ``fits`` must
    be monotone (true up to some ``n``, false after). Calls it about ``2 log2(n)`` times,
    never with much more than twice the answer."""
    if limit < 1 or not fits(1):
        return 0
    good, bad = 1, limit + 1  # fits(good); not fits(bad), or bad is past the limit
    while good < limit:
        probe = min(2 * good, limit)
        if not fits(probe):
            bad = probe
            break
        good = probe
    while bad - good > 1:
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good


def _question_overflow(tokens: int, reserve: int, n_ctx: int) -> ContextOverflowError:
    return ContextOverflowError(
        f"the question needs {tokens} prompt tokens (with the instruction and chat template) "
        f"plus {reserve} reserved for the answer, but the context holds {n_ctx}",
        tokens=tokens,
        n_ctx=n_ctx,
        hint="shorten the question, lower --max-tokens or raise --ctx",
    )
