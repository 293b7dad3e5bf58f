"""Plain text (.txt, .md, .rst and any other text file): sections with their own line numbers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from runtime.index.formats.base import Document, Section, SectionCutter, decode_text, newline_anchors, text_blocks


def read_plain_stream(handle: BinaryIO, encoding: str, max_chars: int) -> Iterator[Section]:
    """A text file as sections of at most ``max_chars`` characters with their own line numbers."""
    cutter = SectionCutter(max_chars)
    line = 1
    for block in text_blocks(handle, encoding):
        yield from cutter.add(block, line)
        line += block.count("\n")
    yield from cutter.finish()


def read_plain(data: bytes) -> Document:
    """A text file held in memory as one section with its own line numbers."""
    text, encoding = decode_text(data)
    return Document("text", (Section(text, None, newline_anchors(text)),), encoding)
