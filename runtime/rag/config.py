"""How rt answers from documents, defined once: when the documents cover a question
(:class:`CoverageOptions`), when a source supports a sentence (:class:`EvidenceOptions`) and how
retrieved passages are packed into the prompt (:class:`PackingOptions`).

Cheap to import (the CLI's --help reads the defaults); the options the model itself takes
(loading, generating, a remote server) stay in :mod:`runtime.config`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CoverageOptions:
    """When the documents count as covering a question (:mod:`runtime.rag.coverage`).

    Covered when ``best_similarity + term_weight * term_share + margin_weight * margin`` reaches
    ``min_score`` (keyword
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
    # how far the first passage stands ahead of the second (``margin``, runtime.rag.coverage):
    # 0 in the default rule, which was fitted before the signal existed; rt eval --calibrate fits it
    margin_weight: float = 0.0
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
