"""Text made valid Unicode where the operating system hands rt something else.

A POSIX file name or command-line argument may hold bytes that are not UTF-8; Python keeps each
as a lone surrogate (U+DC80..U+DCFF, "surrogateescape"), and a Windows name may hold a lone
UTF-16 surrogate. Such a string cannot be encoded: SQLite refuses it, a tokenizer fails on it,
printing it raises. The index keeps a file's name losslessly (each surrogate escaped, so the
exact bytes come back); a query only needs to stay searchable (bad bytes become U+FFFD). Both
go through :func:`repair_surrogates`.
"""

from __future__ import annotations

from collections.abc import Callable


def repair_surrogates(text: str, escape: Callable[[str], str] | None = None) -> str:
    """``text`` itself when it is valid Unicode; else each lone surrogate replaced by
    ``escape(char)``, or, without ``escape``, the escaped bytes decoded again as UTF-8 with
    U+FFFD for what still is not (so ``caf\\udcc3\\udca9`` becomes ``café``)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    if escape is not None:
        return "".join(escape(c) if "\ud800" <= c <= "\udfff" else c for c in text)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no byte made
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")
