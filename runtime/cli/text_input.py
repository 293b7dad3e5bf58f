"""Text from the command line and standard input, made valid before it reaches the library.

An argument or an input line with bytes that are not UTF-8 (``rt search $'memory \xff'``)
becomes text with U+FFFD in their place instead of an "internal error", and one bad line of
``rt search -`` or ``rt chat`` does not lose the lines after it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from runtime.index.search import repair_text

__all__ = ["read_line", "repair_text", "stdin_lines"]


def stdin_lines() -> Iterator[str]:
    """Lines of standard input (newline stripped), each decoded on its own with invalid bytes
    replaced, in the encoding Python chose for stdin."""
    binary = getattr(sys.stdin, "buffer", None)
    if binary is None:  # a text-only stream (an embedding application's): repair each line
        for line in sys.stdin:
            yield repair_text(line.rstrip("\r\n"))
        return
    encoding = getattr(sys.stdin, "encoding", None) or "utf-8"
    for raw in binary:
        yield raw.decode(encoding, "replace").rstrip("\r\n")


def read_line() -> str:
    """One line of standard input with its newline (``""`` at the end), invalid bytes replaced."""
    binary = getattr(sys.stdin, "buffer", None)
    if binary is None:
        return repair_text(sys.stdin.readline())
    return binary.readline().decode(getattr(sys.stdin, "encoding", None) or "utf-8", "replace")
