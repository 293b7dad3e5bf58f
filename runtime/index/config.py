"""The index's defaults, once: the CLI reads its option defaults from :class:`IndexOptions`."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.errors import ConfigError

MODES = ("hybrid", "dense", "keyword")
FUSIONS = ("weighted", "rrf")
VECTOR_INDEXES = ("flat", "hnsw")
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class IndexOptions:
    """How documents are chunked, embedded, committed and searched.

    ``chunk_tokens`` and ``overlap_tokens`` count the embedding model's own tokens and are
    clipped to its maximum sequence length (256 for all-MiniLM-L6-v2, two of them special).
    ``commit_chunks``: files are embedded and committed in batches of about this many chunks;
    a killed run loses at most one batch. ``vector_index``: ``flat`` is exact inner-product
    search, ``hnsw`` an approximate graph for large collections. ``rrf_k`` is the constant of
    reciprocal rank fusion (60, as in Cormack et al. 2009); ``candidates`` is how many hits each
    retriever brings to the fusion. ``fusion``: ``weighted`` scores each candidate
    ``dense_weight * cosine + (1 - dense_weight) * BM25 / best BM25`` (weight fitted on the dev
    split of benchmarks/eval_data.py), ``rrf`` is plain reciprocal rank fusion.
    ``sentence_weight``: with weighted fusion, the first ``sentence_candidates`` hits gain
    ``sentence_weight`` times the largest IDF-weighted share of the query's words that one of
    their sentences holds (:mod:`runtime.index.proximity`; 0 turns it off; fitted on dev).
    Dev preferred a larger dense weight with it on (0.5-0.6), which broke retrieval on rt's own
    notes and docs test corpora, so ``dense_weight`` stays 0.4 (docs/retrieval.md).
    ``light_embedder``: search with :mod:`runtime.index.embedders.light` (the encoder in numpy,
    no torch import: 0.4 s to load instead of 5-13 s) when the model folder is one it
    reproduces; indexing keeps sentence-transformers either way (``RT_LIGHT_EMBEDDER=0``
    overrides it, see :func:`runtime.env.light_embedder`).
    ``rerank_candidates``: how many hits a reranker (``--rerank``) rescores. ``max_file_bytes``
    skips larger files. ``section_chars`` and
    ``read_block_bytes`` bound the memory one file takes however it is shaped: files are read
    ``read_block_bytes`` at a time and chunked ``section_chars`` characters at a time (a chunk
    never crosses such a cut; it falls at a blank line, a newline or a space where there is one).
    """

    chunk_tokens: int = 200
    overlap_tokens: int = 40
    k: int = 5
    mode: str = "hybrid"
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    batch_size: int = 32
    light_embedder: bool = True
    commit_chunks: int = 256
    vector_index: str = "flat"
    rrf_k: int = 60
    candidates: int = 50
    fusion: str = "weighted"
    dense_weight: float = 0.4
    sentence_weight: float = 0.5
    sentence_candidates: int = 20
    rerank_candidates: int = 20
    max_file_bytes: int = 100_000_000
    section_chars: int = 65_536
    read_block_bytes: int = 1 << 20
    chunker: int = 2  # the chunking rules' version (runtime/index/chunking.py CHUNKER); an index keeps its own

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion {self.fusion!r}", hint=f"choose one of: {', '.join(FUSIONS)}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ConfigError(f"dense weight {self.dense_weight} must be between 0 and 1")
        if self.sentence_weight < 0 or self.sentence_candidates < 0:
            raise ConfigError("sentence weight and sentence candidates must not be negative")
        if self.vector_index not in VECTOR_INDEXES:
            raise ConfigError(
                f"unknown vector index {self.vector_index!r}",
                hint=f"choose one of: {', '.join(VECTOR_INDEXES)}",
            )
        if self.chunk_tokens < 16:
            raise ConfigError(f"chunk size {self.chunk_tokens} tokens is too small", hint="use 16 or more")
        if not 0 <= self.overlap_tokens < self.chunk_tokens // 2:
            raise ConfigError(
                f"overlap {self.overlap_tokens} tokens must be between 0 and half the chunk size "
                f"({self.chunk_tokens // 2})",
                hint="lower --overlap",
            )
        if self.section_chars < 1024 or self.read_block_bytes < 4096:
            raise ConfigError("section_chars must be at least 1024 and read_block_bytes at least 4096")
        if self.k < 1 or self.batch_size < 1 or self.commit_chunks < 1:
            raise ConfigError("k, batch size and commit size must be positive")


@dataclass(frozen=True)
class WatchOptions:
    """How ``rt index --watch`` follows folders: changes are applied once the folder has been
    quiet for ``debounce_seconds`` (an editor's save is a burst of events); ``poll_seconds`` is
    how often it checks that a watched folder still exists (and whether it came back)."""

    debounce_seconds: float = 1.0
    poll_seconds: float = 0.5


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is a search mode, else raise :class:`ConfigError` naming the valid ones."""
    if mode not in MODES:
        raise ConfigError(f"unknown search mode {mode!r}", hint=f"choose one of: {', '.join(MODES)}")
    return mode
