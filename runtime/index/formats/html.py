"""HTML: the visible text, headings marked like Markdown, lines pointing into the source."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import BinaryIO

from runtime.index.formats.base import Document, Section, SectionCutter, decode_text, text_blocks


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, headings marked ``#`` like Markdown, with source lines.

    Text goes straight into a :class:`SectionCutter`, so a page of any size or nesting depth
    is held only one section at a time (the parser keeps no stack of open tags).
    """

    SKIP = frozenset({"script", "style", "noscript", "template", "svg"})
    BLOCK = frozenset(
        "p div section article header footer main nav aside li ul ol table tr blockquote pre "
        "dl dt dd figure figcaption form hr br title".split()
    )
    LINE = frozenset({"br", "li", "tr", "dt", "dd"})

    def __init__(self, max_chars: int) -> None:
        super().__init__(convert_charrefs=True)
        self.cutter = SectionCutter(max_chars)
        self.ready: list[Section] = []
        self._started = False
        self._skipping = 0

    def _emit(self, text: str, *, source: bool = False) -> None:
        self._started = True
        self.ready.extend(self.cutter.add(text, self.getpos()[0], source=source))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._break(2)
            self._emit("#" * int(tag[1]) + " ")
        elif tag in self.BLOCK:
            self._break(1 if tag in self.LINE else 2)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif re.fullmatch(r"h[1-6]", tag) or tag in self.BLOCK:
            self._break(1 if tag in self.LINE else 2)

    def handle_data(self, data: str) -> None:
        if self._skipping or (not data.strip() and self._tail_newlines() > 0):
            return
        self._emit(data, source=True)

    def _tail_newlines(self) -> int:
        if not self._started:
            return 2
        tail = self.cutter.tail
        return len(tail) - len(tail.rstrip("\n"))

    def _break(self, newlines: int) -> None:
        missing = newlines - self._tail_newlines()
        if missing > 0:
            self._emit("\n" * missing)


def read_html_stream(handle: BinaryIO, encoding: str, max_chars: int) -> Iterator[Section]:
    """Visible text of an HTML file, fed to the parser a block at a time; lines point into the
    HTML source."""
    parser = _HTMLText(max_chars)
    for block in text_blocks(handle, encoding):
        parser.feed(block)
        yield from parser.ready
        parser.ready.clear()
    parser.close()
    yield from parser.ready
    yield from parser.cutter.finish()


def read_html(data: bytes) -> Document:
    """Visible text of an HTML file held in memory, as one section."""
    _, encoding = decode_text(data)
    sections = list(read_html_stream(io.BytesIO(data), encoding, max(len(data), 1) * 4))
    return Document("html", tuple(sections), encoding)
