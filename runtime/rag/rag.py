"""Retrieval-augmented answers: a model and an index, asked together.

:class:`RAG` holds a loaded :class:`~runtime.llm.model.Model` and an open
:class:`~runtime.index.Index`. ``ask`` retrieves the top k passages, checks that the documents
cover the question, builds a prompt that fits the context window (:mod:`runtime.rag.prompt`) and
generates an answer that cites its sources as [1], [2]. ``stream`` does the same piece by piece.
:class:`Chat` keeps the earlier turns of a conversation and retrieves again on every turn.

The CLI (``rt ask``, ``rt chat``) is a thin skin over these objects; scripts use them directly::

    with RAG.open() as rag:
        answer = rag.ask("What is the KV cache?")
        print(answer.answer)
        for source in answer.sources:
            print(source.n, source.label, source.similarity)
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from runtime.config import GenerateOptions, LoadOptions
from runtime.llm.chat_view import PlainChat, chat_view, with_chat_stops
from runtime.rag.answer import Answer, Source, Timings, Usage
from runtime.rag.calibration import rule_for
from runtime.rag.config import CoverageOptions, EvidenceOptions, PackingOptions
from runtime.rag.coverage import Coverage, assess, needs_probe
from runtime.rag.evidence import check_claims
from runtime.rag.followup import contextual_query
from runtime.rag.packing import build_packed_prompt
from runtime.rag.probe import judge
from runtime.rag.prompt import (
    ANSWER_PREFIX,
    RAG_STOP,
    SYSTEM_NO_SOURCES,
    BuiltPrompt,
    Turn,
    build_prompt,
    parse_citations,
)

if TYPE_CHECKING:
    import numpy as np

    from runtime.index import Hit, Index
    from runtime.index.embedders.base import Embedder
    from runtime.llm.types import Completion, LanguageModel
    from runtime.rag.endpoints import RemoteEndpoints

__all__ = ["RAG", "Chat", "Answer", "AnswerStream", "Source", "Timings", "Usage", "Turn"]

logger = logging.getLogger(__name__)

# A single cosine threshold cannot tell covered questions from unrelated ones (on docs/, 0.25
# misjudged 2 of 30 of each; on the SQuAD test split of benchmarks/bench_answers.py it declined
# 23% of the unanswerable questions): coverage is decided from several signals
# (runtime.rag.coverage). This is the score (similarity plus weighted key-term share) a
# question must reach.
DEFAULT_THRESHOLD = CoverageOptions().min_score

NOT_COVERED = (
    "The indexed documents do not cover this question: {reason}. Index documents that do with "
    "`rt index PATH`, or use --answer-anyway for the model's own, unsourced answer."
)
ANSWERED_ANYWAY = "[Not from your documents: they do not cover this question. The model's own answer:]"


def best_similarity(hits: Sequence[Hit]) -> float | None:
    """The highest cosine similarity among the hits (``None`` when none has one)."""
    return max((h.similarity for h in hits if h.similarity is not None), default=None)


class AnswerStream(Iterator[str]):
    """Text pieces of an answer as they are generated; :attr:`answer` is set at the end.

    :attr:`notices` (what did not fit the context window) is known before the first piece.
    """

    def __init__(self, pieces: Iterator[str], finish: Callable[[], Answer],
                 notices: Sequence[str] = ()) -> None:
        self._pieces = pieces
        self._finish = finish
        self.notices = list(notices)
        self.answer: Answer | None = None

    def __iter__(self) -> AnswerStream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except StopIteration:
            if self.answer is None:
                self.answer = self._finish()
            raise

    def collect(self) -> Answer:
        """Run the stream to the end and return the :class:`Answer`."""
        for _ in self:
            pass
        assert self.answer is not None
        return self.answer


class TimedEmbedder:
    """Wraps an :class:`Embedder` and adds up the seconds spent embedding queries."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.max_tokens = inner.max_tokens
        self.query_seconds = 0.0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed(texts)

    def embed_query(self, query: str) -> np.ndarray:
        from runtime.index.embedders.base import embed_query

        started = time.perf_counter()
        try:
            return embed_query(self.inner, query)
        finally:
            self.query_seconds += time.perf_counter() - started

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return self.inner.token_offsets(text)


@dataclass(frozen=True)
class LoadTimings:
    """Seconds :meth:`RAG.open` spent loading the embedding model and the language model."""

    embedding_model_load: float = 0.0
    model_load: float = 0.0


class RAG:
    """A model and an index, asked together. Closing the RAG closes both.

    ``k`` overrides the index's default number of passages; ``coverage`` decides whether the
    documents cover a question (default: the rule ``rt eval --calibrate`` stored in the index,
    else rt's; ``threshold``, when given, replaces its ``min_score``);
    ``evidence`` when a cited source supports a sentence; ``packing`` how much of each
    retrieved passage goes into the prompt (:mod:`runtime.rag.packing`); ``options`` are the
    default sampling options.
    """

    def __init__(self, model: LanguageModel, index: Index, *, k: int | None = None,
                 threshold: float | None = None, options: GenerateOptions = GenerateOptions(),
                 coverage: CoverageOptions | None = None,
                 evidence: EvidenceOptions = EvidenceOptions(),
                 packing: PackingOptions = PackingOptions(),
                 timer: TimedEmbedder | None = None, load_timings: LoadTimings = LoadTimings()) -> None:
        self.model = model
        self.index = index
        self.k = k
        # the index's own rule (rt eval --calibrate) unless the caller gives one
        self.coverage_rule = "given" if coverage is not None else "default"
        if coverage is None:
            coverage, self.coverage_rule = rule_for(index)
        if threshold is not None:
            coverage, self.coverage_rule = replace(coverage, min_score=threshold), "given"
        self.coverage = coverage
        self.threshold = self.coverage.min_score
        self.evidence = evidence
        self.packing = packing
        self.options = options
        self.load_timings = load_timings
        self._timer = timer
        self._renderer = chat_view(model)

    @classmethod
    def open(cls, model: str | Path | None = None, index: str | Path | None = None, *,
             load: LoadOptions = LoadOptions(), k: int | None = None,
             threshold: float | None = None, options: GenerateOptions = GenerateOptions(),
             remote: RemoteEndpoints | None = None, packing: PackingOptions = PackingOptions()) -> RAG:
        """Open the index, load its embedding model, then load the language model.

        ``model`` is a registry name, a GGUF path or ``None`` (the default); ``index`` a folder
        or ``None`` (``RT_INDEX``, else the default index); ``load`` says how the model is
        loaded; ``k``, ``threshold`` and ``options`` are as for :class:`RAG`. The cheap checks
        come first: a missing model file or a missing index is reported before anything heavy
        is loaded (:class:`ModelNotFoundError` says how to get a model, :class:`IndexNotFoundError`
        how to build an index). ``remote`` sends generation (``llm_url``) or query embedding
        (``embed_url``) to OpenAI-compatible servers (docs/serving.md); retrieval stays here.
        """
        from runtime.index import Index
        from runtime.llm.model import Model
        from runtime.models.registry import resolve_model

        generate_remotely = remote is not None and remote.llm_url is not None
        model_path = None if generate_remotely else resolve_model(model)
        started = time.perf_counter()
        opened = Index.open(index, embedder=remote.embedder() if remote is not None and remote.embed_url else None)
        try:
            timer = TimedEmbedder(opened.embedder)
            opened.embedder = timer
            loaded_at = time.perf_counter()
            language_model = remote.model() if generate_remotely else Model(model_path, load)  # type: ignore[union-attr]
        except BaseException:
            opened.close()
            raise
        timings = LoadTimings(embedding_model_load=loaded_at - started,
                              model_load=time.perf_counter() - loaded_at)
        return cls(language_model, opened, k=k, threshold=threshold, options=options,
                   packing=packing, timer=timer, load_timings=timings)

    def close(self) -> None:
        """Free the model and close the index."""
        try:
            self.model.close()
        finally:
            self.index.close()

    def __enter__(self) -> RAG:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def retrieve(self, question: str, k: int | None = None) -> list[Hit]:
        """The top ``k`` passages for ``question``, best first."""
        return self.index.search(question, k or self.k or self.index.default_k)

    def ask(self, question: str, *, k: int | None = None, options: GenerateOptions | None = None,
            answer_anyway: bool = False, history: Sequence[Turn] = ()) -> Answer:
        """Answer ``question`` from the documents (see :meth:`stream` for the options)."""
        return self.stream(question, k=k, options=options, answer_anyway=answer_anyway,
                           history=history).collect()

    def stream(self, question: str, *, k: int | None = None, options: GenerateOptions | None = None,
               answer_anyway: bool = False, history: Sequence[Turn] = ()) -> AnswerStream:
        """Retrieve, build the prompt, and stream the answer's text.

        ``answer_anyway`` lets the model answer on its own (no sources, marked as such) when
        the documents do not cover the question. ``history`` holds earlier chat turns.
        Raises :class:`~runtime.errors.ContextOverflowError` when the question alone does not
        fit the context window.
        """
        started = time.perf_counter()
        options = options or self.options
        embedded_before = self._timer.query_seconds if self._timer else 0.0
        # a chat follow-up ("And how much memory does it cost?") is retrieved with the
        # informative terms of the questions before it (runtime.rag.followup)
        query = contextual_query(question, [t.question for t in history], self.index) if history else question
        hits = self.retrieve(query, k)
        retrieval = time.perf_counter() - started
        embedding = (self._timer.query_seconds - embedded_before) if self._timer else 0.0
        timings = Timings(retrieval=retrieval, query_embedding=embedding, search=retrieval - embedding)
        best = best_similarity(hits)
        coverage = assess(question, hits, self.index, self.coverage)
        coverage.signals["rule"] = self.coverage_rule  # which rule decided: default, calibrated or given
        sourced: BuiltPrompt | None = None
        if needs_probe(coverage.signals, self.coverage):
            # the model's own yes/no, read after the sources and the question are in its KV
            # cache; the answer below reuses them (runtime.rag.probe)
            sourced = self._sourced_prompt(question, hits, options, history)
            coverage = judge(self.model, self._renderer, sourced, coverage, self.coverage)
        covered = coverage.covered
        timings = replace(timings, coverage=time.perf_counter() - started - retrieval)
        logger.debug("retrieved %d passages in %.3fs; %s", len(hits), retrieval, coverage.reason)
        if not covered and not answer_anyway:
            text = NOT_COVERED.format(reason=coverage.reason)
            answer = self._answer(question, text, coverage=coverage, best=best, built=None,
                                  completion=None, timings=replace(timings, total=time.perf_counter() - started))
            return AnswerStream(iter([text]), lambda: answer)

        building = time.perf_counter()
        renderer = self._renderer
        options = with_chat_stops(renderer, options)
        if covered:
            built = sourced or self._sourced_prompt(question, hits, options, history)
            options = replace(options, stop=tuple(options.stop) + RAG_STOP)
            lead = ANSWER_PREFIX
        else:
            built = build_prompt(renderer, question, [], reserve=options.max_tokens,
                                 history=history, system=SYSTEM_NO_SOURCES)
            lead = ANSWERED_ANYWAY + "\n"
        timings = replace(timings, prompt_building=time.perf_counter() - building)
        for notice in built.notices:
            logger.info("%s", notice)
        stream = renderer.stream(built.prompt, options)

        def finish() -> Answer:
            completion = stream.completion
            assert completion is not None
            final = replace(timings, prompt_processing=completion.prompt_seconds,
                            generation=completion.generation_seconds)
            return self._answer(question, lead + completion.text, coverage=coverage, best=best,
                                built=built, completion=completion, timings=final, started=started)

        return AnswerStream(itertools.chain([lead], stream), finish, built.notices)

    def _sourced_prompt(self, question: str, hits: Sequence[Hit], options: GenerateOptions,
                        history: Sequence[Turn]) -> BuiltPrompt:
        """The answer prompt with the sources (packed, unless packing is off), started with
        :data:`ANSWER_PREFIX`. Coverage is decided on the retrieved ``hits`` themselves."""
        renderer = self._renderer
        # the plain layout of a base model ends in "Answer:", the prefix goes after a space
        prefix = (" " if isinstance(renderer, PlainChat) else "") + ANSWER_PREFIX
        if self.packing.enabled:  # packs only as many hits as the prompt can hold
            return build_packed_prompt(renderer, question, hits, self.index.embedder, self.packing,
                                       reserve=options.max_tokens, history=history, answer_prefix=prefix)
        return build_prompt(renderer, question, hits, reserve=options.max_tokens,
                            history=history, answer_prefix=prefix)

    def _answer(self, question: str, text: str, *, coverage: Coverage, best: float | None,
                built: BuiltPrompt | None, completion: Completion | None, timings: Timings,
                started: float | None = None) -> Answer:
        covered = coverage.covered
        from_documents = covered and built is not None
        given: Sequence[Any] = built.sources if built is not None else []
        sources = [
            Source(n=n, path=h.path, page=h.page, lines=h.lines, score=h.score,
                   similarity=h.similarity, text=h.text, location=getattr(h, "location", None))
            for n, h in enumerate(given, start=1)
        ]
        claims = []
        if from_documents:
            checking = time.perf_counter()
            claims = check_claims(text, sources, self.index.embedder, self.evidence)
            timings = replace(timings, evidence=time.perf_counter() - checking)
        if started is not None:
            timings = replace(timings, total=time.perf_counter() - started)
        usage = Usage()
        if completion is not None:
            usage = Usage(completion.prompt_tokens, completion.completion_tokens, completion.cached_tokens,
                          completion.draft_tokens, completion.accepted_tokens)
        return Answer(
            question=question,
            answer=text.strip(),
            covered=covered,
            from_documents=from_documents,
            sources=sources,
            citations=parse_citations(text) if from_documents else [],
            dropped=built.dropped_sources if built is not None else 0,
            dropped_turns=built.dropped_turns if built is not None else 0,
            best_similarity=best,
            threshold=self.threshold,
            usage=usage,
            timings=timings,
            finish_reason=completion.finish_reason if completion is not None else "not_covered",
            notices=list(built.notices) if built is not None else [],
            coverage=coverage,
            claims=claims,
        )

    def chat(self, *, k: int | None = None, options: GenerateOptions | None = None,
             answer_anyway: bool = False) -> Chat:
        """A multi-turn conversation over this model and index (options as for :meth:`stream`)."""
        return Chat(self, k=k, options=options, answer_anyway=answer_anyway)


class Chat:
    """A conversation: every turn retrieves again; earlier turns go into the prompt first.

    Keeping the system message and the earlier turns at the start of every prompt, and the new
    sources next to the new question, lets the model reuse its KV cache for that prefix. Turns
    that no longer fit the context window are forgotten, oldest first.
    """

    def __init__(self, rag: RAG, *, k: int | None = None, options: GenerateOptions | None = None,
                 answer_anyway: bool = False) -> None:
        self.rag = rag
        self.k = k
        self.options = options
        self.answer_anyway = answer_anyway
        self.history: list[Turn] = []

    def stream(self, question: str) -> AnswerStream:
        """Stream one turn's answer; the turn joins the history when the stream ends."""
        inner = self.rag.stream(question, k=self.k, options=self.options, answer_anyway=self.answer_anyway,
                                history=self.history)

        def finish() -> Answer:
            answer = inner.collect()
            if answer.finish_reason != "not_covered":
                said = answer.answer.removeprefix(ANSWERED_ANYWAY).strip()
                self.history = self.history[answer.dropped_turns:] + [Turn(question, said)]
            return answer

        return AnswerStream(inner, finish, inner.notices)

    def ask(self, question: str) -> Answer:
        """One turn, collected."""
        return self.stream(question).collect()
