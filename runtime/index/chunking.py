"""Split sections into chunks measured in the embedding model's own tokens.

Text is cut into small units (sentences or lines; long runs without either into windows of a
few dozen tokens). Units are packed greedily up to the token budget; a chunk prefers to end at
a paragraph boundary once it is half full, and a heading starts a new chunk once the current one
is a quarter full. Consecutive chunks share up to ``overlap`` tokens of trailing units, except
across a heading. Chunk text is an exact slice of the section, so its character span and line
range point back into the file.

Hard-wrapped prose (AsciiDoc and RST sources, RFC-style text, mail, notes) ends its lines inside
sentences. A line that goes on with the sentence of the line before is not where a chunk ends
(once half full, it ends at the last sentence's end instead) nor where the next chunk's overlap
starts (a shorter overlap, or none, rather than half a sentence). On git's manuals
(benchmarks/eval_long.py) chunks starting inside a sentence went from 1,407 of 2,713 to 210 of
2,616, chunks ending inside one from 413 to 137; text with a paragraph a line (the Reddit eval
set) is chunked exactly as before. These are the
chunking rules of version 2 (``IndexOptions.chunker``); an index records the version it was
built with and keeps it until ``rt index --rebuild``, so one index never mixes the two.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runtime.index.formats.base import Section

TokenOffsets = Callable[[str], Sequence[tuple[int, int]]]

# The readers give text with "\n" line ends (readers.unix_newlines); a section made elsewhere
# may still hold CRLF or CR, so the patterns take any of the three (the same on "\n"-only text).
_EOL = r"(?:\r\n|\r(?!\n)|\n)"  # "\r\n?" could take a CRLF as two line ends: a blank line
_BLOCK = re.compile(rf"\S(?:.*?\S)??(?={_EOL}[ \t]*{_EOL}|\s*\Z)", re.S)
_PIECE = re.compile(r"\S.*?(?:[.!?;:](?=\s)|(?=[\r\n])|\Z)", re.S)
_MD_HEADING = re.compile(r"#{1,6}\s")
_RST_UNDERLINE = re.compile(rf"{_EOL}([=\-~^\"'`#*+])\1{{2,}}[ \t]*(?:{_EOL}|\Z)")
_LINE_END = re.compile(r"[\r\n]")
_SENTENCE_END = re.compile(r"[.!?:][\"')\]]*\Z")


@dataclass(frozen=True)
class Chunk:
    """A piece of a section: its text, where it came from, and its size in model tokens."""

    text: str
    page: int | None
    lines: tuple[int, int] | None
    chars: tuple[int, int]
    n_tokens: int
    location: str | None = None


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    para_start: bool
    heading: bool
    continues: bool = False  # starts a line that goes on with the sentence of the line before


class _Tokens:
    """Token start offsets of a text, to count the tokens inside any character span."""

    def __init__(self, offsets: Sequence[tuple[int, int]]) -> None:
        self.starts = [start for start, end in offsets if end > start]

    def count(self, start: int, end: int) -> int:
        return bisect.bisect_left(self.starts, end) - bisect.bisect_left(self.starts, start)

    def cut_points(self, start: int, end: int, size: int, text: str) -> list[int]:
        """Character offsets splitting ``[start, end)`` into pieces of about ``size`` tokens."""
        first, last = bisect.bisect_left(self.starts, start), bisect.bisect_left(self.starts, end)
        cuts, t = [], first + size
        while t < last:
            best = t
            for back in range(t, max(t - size // 2, first + 1), -1):  # prefer a cut before a word
                if text[self.starts[back] - 1].isspace():
                    best = back
                    break
            cuts.append(self.starts[best])
            t = best + size
        return cuts


def _is_heading(text: str, start: int, end: int) -> bool:
    if _MD_HEADING.match(text, start):
        return True
    line_end = _LINE_END.search(text, start, end)
    return line_end is not None and _RST_UNDERLINE.match(text, line_end.start()) is not None


def _units(text: str, tokens: _Tokens, window: int, wrapped_sentences: bool) -> list[_Unit]:
    units: list[_Unit] = []
    for block in _BLOCK.finditer(text):
        heading = _is_heading(text, block.start(), block.end())
        para_start, continues = True, False
        for piece in _PIECE.finditer(text, block.start(), block.end()):
            start, end = piece.start(), piece.end()
            edges = [start, *tokens.cut_points(start, end, window, text), end]
            for a, b in zip(edges, edges[1:]):
                units.append(_Unit(a, b, para_start, heading and para_start, continues))
                para_start = continues = False
            # a hard-wrapped line ends a piece mid-sentence: the next piece goes on with it
            continues = (wrapped_sentences and _SENTENCE_END.search(text, start, end) is None
                         and _LINE_END.match(text, end) is not None)
    return units


def chunk_section(
    section: Section, token_offsets: TokenOffsets, budget: int, overlap: int, *, wrapped_sentences: bool = True
) -> list[Chunk]:
    """Chunks of at most ``budget`` tokens (plus or minus a word-piece) covering ``section``.

    ``wrapped_sentences=False`` treats every line end as a sentence's end, as rt did before
    issue 18 (kept so that benchmarks/bench_long_docs.py can measure the two side by side)."""
    text = section.text
    tokens = _Tokens(token_offsets(text))
    units = _units(text, tokens, max(overlap, 16), wrapped_sentences)
    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j = _chunk_end(units, i, tokens, budget)
        start, end = units[i].start, units[j - 1].end
        lines = None
        if section.line_anchors:
            lines = (section.line_at(start) or 1, section.line_at(end - 1) or 1)
        chars = (section.offset + start, section.offset + end)
        chunks.append(Chunk(text[start:end], section.page, lines, chars, tokens.count(start, end),
                            section.location))
        if j >= len(units):
            break
        i = _overlap_start(units, i, j, tokens, overlap)
    return chunks


def _chunk_end(units: list[_Unit], i: int, tokens: _Tokens, budget: int) -> int:
    """Exclusive index of the last unit of the chunk that starts at unit ``i``."""
    start = units[i].start
    j = i + 1
    while j < len(units) and tokens.count(start, units[j].end) <= budget:
        if units[j].heading and tokens.count(start, units[j - 1].end) >= budget // 4:
            return j
        j += 1
    if j < len(units) and not units[j].para_start:
        for k in range(j - 1, i, -1):  # end at the last paragraph boundary if half full
            if units[k].para_start and tokens.count(start, units[k - 1].end) >= budget // 2:
                return k
        if units[j].continues:
            for k in range(j - 1, i, -1):  # else not inside a wrapped sentence, if half full
                if not units[k].continues and tokens.count(start, units[k - 1].end) >= budget // 2:
                    return k
    return j


def _overlap_start(units: list[_Unit], i: int, j: int, tokens: _Tokens, overlap: int) -> int:
    """First unit of the next chunk: reach back up to ``overlap`` tokens, never across a heading."""
    if units[j].heading or overlap == 0:
        return j
    m = j
    while m - 1 > i and tokens.count(units[m - 1].start, units[j - 1].end) <= overlap:
        m -= 1
    # never start inside a hard-wrapped sentence: a shorter overlap, or none, rather than half of one
    return next((k for k in range(m, j) if not units[k].continues), j)


def holds_heading(text: str) -> bool:
    """Whether a paragraph of ``text`` is a heading (Markdown ``#`` or an underlined line)."""
    return any(_is_heading(text, block.start(), block.end()) for block in _BLOCK.finditer(text))
