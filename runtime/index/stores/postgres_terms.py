"""Keyword search and term statistics of the PostgreSQL store, over its generated ``tsvector``.

:class:`PostgresTerms` is the half of :class:`~runtime.index.stores.postgres.PostgresStore` that
answers the terms API (:class:`~runtime.index.stores.base.TermStats`) and ``keyword_search``; it
runs its SQL through the store's ``_rows`` (which names the store's schema).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from runtime.index.store import query_words

_OPEN, _CLOSE = "\x02", "\x03"  # ts_headline markers, as runtime/index/proximity.py's
_MATCH = re.compile(_OPEN + "[^" + _CLOSE + "]*" + _CLOSE)

# BM25 as SQLite's FTS5 computes it, in two steps. The GIN index gives, per query lexeme, the
# chunks holding it (without reading their tsvector): hence each lexeme's document frequency and
# a cheap score (BM25 with every term frequency 1). Only the best KEYWORD_CANDIDATES by that score
# have their tsvector unnested for the true term frequencies and their exact BM25. Unnesting every
# matching chunk made keyword search 29-40x slower than FTS5 (docs/scaling.md); a chunk whose
# high term frequency would lift it from below the candidates into the results is what is lost.
# The corpus statistics (chunks, average length) come from the documents' totals.
# Measured at 10k synthetic chunks (benchmarks/bench_store.py, EXPLAIN ANALYZE), the second step
# took 60 of the query's 85 ms: the candidates were joined to chunks by a hash over the whole
# table, and every lexeme of each candidate was unnested to keep the query's few. Now the
# candidates are fetched by primary key (an array, so the planner cannot pick the hash), and
# setweight + ts_filter keep the query's lexemes inside the tsvector before it is unnested (26
# ms in all). Each score is summed in lexeme order, so that equal scores are equal to the last
# bit and ties go by chunk id, whatever order the plan meets the rows in.
KEYWORD_CANDIDATES = 400
_BM25 = """
WITH q AS (SELECT coalesce(array_agg(DISTINCT lexeme), '{}') AS lexemes
           FROM unnest(to_tsvector('rt.english'::regconfig, %(words)s))),
n AS (SELECT greatest(coalesce(sum(n_chunks), 0), 1)::float8 AS n,
             coalesce(sum(n_tokens)::float8 / nullif(sum(n_chunks), 0), 1) AS avgdl FROM rt.documents),
hit AS (SELECT l.lexeme, c.id, c.n_tokens FROM unnest((SELECT lexemes FROM q)) AS l(lexeme)
        JOIN rt.chunks c ON c.tsv @@ quote_literal(l.lexeme)::tsquery),
df AS (SELECT hit.lexeme, greatest(ln((n.n - count(*) + 0.5) / (count(*) + 0.5)), 1e-6) AS idf
       FROM hit CROSS JOIN n GROUP BY hit.lexeme, n.n),
candidates AS (
    SELECT hit.id, hit.n_tokens FROM hit JOIN df USING (lexeme) CROSS JOIN n GROUP BY hit.id, hit.n_tokens, n.avgdl
    ORDER BY sum(df.idf * 2.2 / (1 + 1.2 * (0.25 + 0.75 * hit.n_tokens / greatest(n.avgdl, 1e-9)))) DESC,
             hit.id
    LIMIT %(candidates)s),
m AS (SELECT k.id, k.n_tokens, u.lexeme, coalesce(array_length(u.positions, 1), 1)::float8 AS tf
      FROM q, rt.chunks k CROSS JOIN LATERAL unnest(ts_filter(setweight(k.tsv, 'A', q.lexemes), '{a}')) u
      WHERE k.id = ANY((SELECT array_agg(id) FROM candidates)::bigint[]))
SELECT m.id, sum(df.idf * m.tf * 2.2 / (m.tf + 1.2 * (0.25 + 0.75 * m.n_tokens / greatest(n.avgdl, 1e-9)))
                 ORDER BY m.lexeme) AS score
FROM m JOIN df USING (lexeme) CROSS JOIN n GROUP BY m.id ORDER BY score DESC, m.id LIMIT %(limit)s
"""

class PostgresTerms:
    """Keyword search (BM25, as FTS5's) and the terms API, in SQL."""

    def _rows(self, sql: str, params: Any = None) -> list[tuple]:
        raise NotImplementedError  # the store's: runs sql in its schema

    def keyword_search(self, query: str, limit: int) -> list[tuple[int, float]]:
        """``(chunk id, BM25 score)`` best first, as the SQLite store's."""
        words = query_words(query)
        if not words:
            return []
        rows = self._rows(_BM25, {"words": " ".join(words), "limit": limit,
                                  "candidates": max(KEYWORD_CANDIDATES, 4 * limit)})
        return [(int(i), float(s)) for i, s in rows]

    def chunks_matching(self, word: str) -> int:
        """How many chunks hold ``word`` (stemmed; several tokens: as a phrase)."""
        rows = self._rows("SELECT count(*) FROM rt.chunks WHERE tsv @@ phraseto_tsquery('rt.english', %s)",
                          (word,))
        return int(rows[0][0])

    def term_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """``term -> how many chunks hold it``."""
        return {term: self.chunks_matching(term) for term in terms}

    def chunks_holding(self, terms: Sequence[str], ids: Sequence[int]) -> dict[str, set[int]]:
        """``term -> the chunks among ids that hold it``."""
        out: dict[str, set[int]] = {}
        for term in terms:
            rows = self._rows("SELECT id FROM rt.chunks WHERE id = ANY(%s) AND "
                              "tsv @@ phraseto_tsquery('rt.english', %s)", (list(ids), term)) if ids else []
            out[term] = {int(r[0]) for r in rows}
        return out

    def match_offsets(self, word: str, ids: Sequence[int]) -> dict[int, list[int]]:
        """``chunk id -> character offsets of the matches of word`` among ``ids``."""
        if not ids:
            return {}
        options = f"StartSel={_OPEN}, StopSel={_CLOSE}, HighlightAll=true"
        rows = self._rows(
            "SELECT id, ts_headline('rt.english', text, phraseto_tsquery('rt.english', %s), %s) FROM rt.chunks "
            "WHERE id = ANY(%s) AND tsv @@ phraseto_tsquery('rt.english', %s)", (word, options, list(ids), word))
        return {int(i): [m.start() - 2 * n for n, m in enumerate(_MATCH.finditer(marked))] for i, marked in rows}

    def document_spread(self, word: str) -> tuple[int, int]:
        """``(chunks holding word, of which in its most frequent document)``."""
        rows = self._rows("SELECT count(*) FROM rt.chunks WHERE tsv @@ phraseto_tsquery('rt.english', %s) "
                          "GROUP BY document_id", (word,))
        counts = [int(r[0]) for r in rows]
        return sum(counts), max(counts, default=0)

    def chunks_holding_all(self, words: Sequence[str], limit: int = 50) -> list[int]:
        words = [w for w in words if w.strip()]
        if not words:
            return []
        query = " && ".join(["phraseto_tsquery('rt.english', %s)"] * len(words))
        rows = self._rows(f"SELECT id FROM rt.chunks WHERE tsv @@ ({query}) ORDER BY id LIMIT %s", (*words, limit))
        return [int(r[0]) for r in rows]
