"""Text from the command line and standard input, made valid before it reaches the library.

An argument or an input line with bytes that are not UTF-8 (``rt search $'memory \xff'``)
becomes text with U+FFFD in their place instead of an "internal error", and one bad line of
``rt search -`` or ``rt chat`` does not lose the lines after it.

Standard input is read as UTF-8 first, whatever Python guessed: on Windows Python decodes a
pipe in the ANSI code page (cp1252), so ``Get-Content notes.txt | rt search -`` in PowerShell 7
(which sends UTF-8) turned ``東京`` into mojibake. A UTF-8 byte-order mark (Notepad, PowerShell's
``Out-File -Encoding utf8``) is dropped; a UTF-16 stream (PowerShell 5.1's ``Out-File``) is read as
UTF-16; a line that is not UTF-8 falls back to the encoding Python chose (the ANSI code page on
Windows), with anything undecodable replaced.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from typing import IO

from runtime.text import repair_surrogates as repair_text

__all__ = ["decode_line", "read_line", "repair_text", "stdin_lines"]

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_utf16_stdin: IO[str] | None = None


def decode_line(raw: bytes, fallback: str | None = None) -> str:
    """One line of input bytes as text: UTF-8 (a leading BOM dropped), else ``fallback``
    (default: the encoding Python chose for stdin) with undecodable bytes replaced."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        encoding = fallback or getattr(sys.stdin, "encoding", None) or "utf-8"
        return raw.decode(encoding, "replace")


def _utf16_text(binary: IO[bytes]) -> IO[str] | None:
    """A text reader over ``binary`` when it starts with a UTF-16 byte-order mark, else ``None``."""
    global _utf16_stdin
    if _utf16_stdin is not None:
        return _utf16_stdin
    peek = getattr(binary, "peek", None)
    if peek is None:
        return None
    try:
        head = peek(2)[:2]
    except (OSError, ValueError):
        return None
    if head not in _UTF16_BOMS:
        return None
    _utf16_stdin = io.TextIOWrapper(binary, encoding="utf-16", errors="replace", newline=None)  # type: ignore[arg-type]
    return _utf16_stdin


def stdin_lines() -> Iterator[str]:
    """Lines of standard input (newline stripped), each decoded on its own (see the module's
    docstring for which encoding), invalid bytes replaced."""
    binary = getattr(sys.stdin, "buffer", None)
    if binary is None:  # a text-only stream (an embedding application's): repair each line
        for line in sys.stdin:
            yield repair_text(line.rstrip("\r\n"))
        return
    utf16 = _utf16_text(binary)
    if utf16 is not None:
        for line in utf16:
            yield line.rstrip("\r\n")
        return
    for raw in binary:
        yield decode_line(raw).rstrip("\r\n")


def read_line() -> str:
    """One line of standard input with its newline (``""`` at the end), invalid bytes replaced."""
    binary = getattr(sys.stdin, "buffer", None)
    if binary is None:
        return repair_text(sys.stdin.readline())
    utf16 = _utf16_text(binary)
    if utf16 is not None:
        return utf16.readline()
    return decode_line(binary.readline())
