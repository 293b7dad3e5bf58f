"""Defaults, once: frozen dataclasses that the library takes and the CLI reads its defaults from."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from runtime.errors import ConfigError


@dataclass(frozen=True)
class KVCacheType:
    """An element type for llama.cpp's KV cache (``--kv-type``): ggml stores ``block`` values in
    ``block_bytes`` bytes, and llama.cpp knows it as ``GGML_TYPE_<NAME>``."""

    name: str
    block: int
    block_bytes: int


# The KV cache types rt offers. q8_0 halves the cache; llama.cpp needs flash attention for a
# quantized V cache, which the engine turns on for it.
KV_CACHE_TYPES: dict[str, KVCacheType] = {
    kv.name: kv for kv in (KVCacheType("f16", 1, 2), KVCacheType("q8_0", 32, 34))
}
KV_TYPES = tuple(KV_CACHE_TYPES)


def kv_cache_type(name: str) -> KVCacheType:
    """The KV cache type called ``name``; :class:`ConfigError` naming the known ones otherwise."""
    try:
        return KV_CACHE_TYPES[name]
    except KeyError:
        raise ConfigError(f"unknown KV cache type {name!r}", hint=f"use one of {', '.join(KV_TYPES)}") from None


LOOKUP_DRAFT = 8  # prompt-lookup draft tokens per verification batch (docs/asking.md)


def default_threads() -> int:
    """The cores this process may use (affinity-aware), not llama-cpp-python's cpu_count()//2."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except OSError:
            pass
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class LoadOptions:
    """How a GGUF is loaded and its context created.

    ``repack`` loads the file a second time with llama.cpp's CPU "extra buffer types" (weight
    repacking, AMX) and generates on that copy, after the prompt is processed on the mapped
    weights (the hybrid, :mod:`runtime.llm.llama_engine`): faster generation, for a second copy
    of the weights and a second context in anonymous memory; repacked kernels crash on some
    CPUs, so a throwaway process tries them first. ``None`` (auto, the default) lets
    :func:`runtime.llm.repack_choice.choose` decide; ``True``/``False`` force it (``--repack`` /
    ``--no-repack``). ``threads=None`` means :func:`default_threads`.
    ``isolate`` runs the model in a child process so a native crash or an OOM kill is reported
    instead of taking the caller down with it.
    """

    n_ctx: int = 4096
    n_batch: int = 512
    threads: int | None = None
    kv_type: str = "f16"
    repack: bool | None = None
    force: bool = False
    isolate: bool = True
    verbose: bool = False
    prefix_cache: bool = True  # reuse a saved prompt prefix's KV state (runtime.llm.prefix_cache)
    # the longest prompt-lookup draft one batch can verify: the context reserves logits for
    # 1 + max_draft positions (n_outputs_max), n_vocab * 4 bytes each
    max_draft: int = LOOKUP_DRAFT

    def __post_init__(self) -> None:
        kv_cache_type(self.kv_type)  # checked once, here, for the CLI, the library and the engine

    @property
    def n_threads(self) -> int:
        return self.threads or default_threads()


def output_rows(max_draft: int, n_ubatch: int) -> int:
    """Rows of logits the engine reserves (``n_outputs_max``): the next token's, and one per
    prompt-lookup draft token ``max_draft`` allows, at most a micro-batch (the memory estimate
    counts the same rows)."""
    return max(1, min(1 + max_draft, n_ubatch))


@dataclass(frozen=True)
class GenerateOptions:
    """Sampling and stopping. ``temperature=0`` is greedy and deterministic."""

    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 0.95
    top_k: int = 40
    seed: int = 0
    stop: tuple[str, ...] = field(default_factory=tuple)
    # prompt-lookup decoding (runtime.llm.lookup): draft up to ``lookup_draft`` tokens by finding
    # the last ``lookup_ngram`` (down to 1) generated tokens in the prompt; greedy only, off by
    # default (docs/asking.md: llama.cpp is not batch-invariant, so greedy output may change)
    prompt_lookup: bool = False
    lookup_draft: int = LOOKUP_DRAFT  # capped by LoadOptions.max_draft
    lookup_ngram: int = 3
    # draft only as long as the running acceptance makes worth verifying, with one more row of a
    # verification batch costing ``lookup_row_cost`` single-token decodes (runtime.llm.lookup);
    # None: measured once per model and machine, and cached (runtime.llm.row_cost).
    # lookup_adaptive=False drafts every match in full
    lookup_adaptive: bool = True
    lookup_row_cost: float | None = None
    # generation threads for this call (rt serve re-samples the busy cores per request);
    # None keeps the count the model was loaded with
    threads: int | None = None


@dataclass(frozen=True)
class CoverageOptions:
    """When the documents count as covering a question (:mod:`runtime.rag.coverage`).

    Covered when ``best_similarity + term_weight * term_share`` reaches ``min_score`` (keyword
    search, which has no similarities: ``term_share`` reaches ``min_term_share``), unless terms
    the index never mentions carry more than ``max_missing_share`` of the question's IDF weight.
    Fitted on the dev split of benchmarks/bench_answers.py (SQuAD articles, 1,896 chunks,
    all-MiniLM-L6-v2, hybrid search as of this commit): 300 answerable and 100 unanswerable
    questions, 89.0% answered and 91.0% declined. The test split then gave 91.0% and 91.0% (one
    cosine threshold: 99.3% and 23.0% at 0.25; on dev 81.7% and 81.0% at 0.45). Terms the index
    never mentions change little on that set (its questions share words with the indexed
    articles); the rule is for names, as in "the Auvergne region". Refit (``--fit --split dev``)
    when retrieval or the embedding model changes: the similarities move with them.
    """

    term_weight: float = 0.8
    min_score: float = 0.953
    min_term_share: float = 0.56
    max_missing_share: float = 0.5
    # the model's own yes/no (runtime.rag.probe): ``probe_weight * (P(yes) - 0.5)`` joins the
    # score, asked only where it could change the decision; 0 never asks (the default: see
    # docs/asking.md for what it measured per model)
    probe_weight: float = 0.0


@dataclass(frozen=True)
class EvidenceOptions:
    """When a cited source supports a sentence of the answer (:mod:`runtime.rag.evidence`).

    A source sentence supports a claim when ``lexical_weight * overlap + (1 - lexical_weight)
    * cosine`` reaches ``min_support``; ``overlap`` is the share of the claim's content words
    found in it, ``cosine`` the embedding similarity of the two with the index's embedder.
    Fitted on the dev split of benchmarks/bench_evidence.py (1,651 labelled claims from 300 SQuAD
    questions, all-MiniLM-L6-v2, packed sources; best balanced accuracy over 0.1 x 0.01 steps):
    weight 0.5 kept, threshold 0.5 -> 0.68, balanced accuracy 0.754 -> 0.840 on dev, 0.744 ->
    0.834 on test; there, supported claims kept 0.99 -> 0.90, wrong sources caught 0.81 -> 0.98, claims
    with a wrong fact in the source's words 0.19 -> 0.55 (docs/asking.md); fitted without that
    class the threshold would be 0.60. Refit when the embedding model changes.
    """

    lexical_weight: float = 0.5
    min_support: float = 0.68
    max_evidence: int = 1


@dataclass(frozen=True)
class PackingOptions:
    """How retrieved passages are packed into the prompt (:mod:`runtime.rag.packing`).

    ``enabled``: give the model, of each retrieved passage, the sentence closest to the question
    (scored like evidence: ``lexical_weight * word share + (1 - lexical_weight) * cosine``); the
    ``widen_top`` best-ranked passages keep ``neighbours`` sentences on each side, plus any
    sentence within ``keep_ratio`` of their best (at most ``max_sentences`` apart), the others
    their best sentence and ``rest_after`` sentences after it. A passage whose best sentence
    scores under ``min_relative_score`` times the best of all is left out (the top-ranked one
    never is). Excerpts of a file that overlap or touch merge; one whose 3-word shingles are
    ``duplicate_similarity`` in a better-ranked one is dropped. Off: whole chunks, as retrieved.
    Chosen on the dev split of benchmarks/bench_answers.py (SQuAD, k=5; docs/asking.md):
    every passage kept, as leaving out passages under 0.8 of the best lost citation validity
    (94.4%: the model cited sources it was no longer given). Of the first 150 dev questions
    (132 covered), the user message held 1,048 tokens with whole chunks, 609 with one neighbour
    each side for every passage (gold answer in the prompt 94.7%), 393 with neighbours for the
    best-ranked passage only (93.2%), 476 with the next sentence for every passage (93.9%).
    SmolLM2's answers (60 + 20 dev questions, seed 10) with the last: 459 prompt tokens against
    669 and 1,134, containment 31.5% (29.6% with either), citation validity 100%.
    """

    enabled: bool = True
    neighbours: int = 1
    widen_top: int = 1
    rest_after: int = 0
    keep_ratio: float = 0.9
    max_sentences: int = 3
    min_relative_score: float = 0.0
    always_keep: int = 1
    lexical_weight: float = 0.5
    duplicate_similarity: float = 0.8


@dataclass(frozen=True)
class RemoteOptions:
    """How rt talks to an OpenAI-compatible server (``--llm-url``, ``--embed-url``).

    Timeouts and retries are bounded: a refused connection, a 429 or a 502/503/504 is retried
    ``retries`` times (waiting the server's ``Retry-After``, at most ``max_wait`` seconds), a
    generation that sends nothing for ``read_timeout`` seconds fails. ``n_ctx`` is the context
    window assumed when the server does not say (llama-cpp-python's server default, 2048).
    """

    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    retries: int = 2
    max_wait: float = 5.0
    n_ctx: int = 2048
