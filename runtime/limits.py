"""The process limits that make big native libraries die instead of failing politely.

Under an address-space limit (``ulimit -v``) torch's import does not raise: below about 300 MB
its shared library fails to map (an ImportError), around 600 MB a C++ ``std::bad_alloc``
aborts the process, at 1.5 GB it segfaults. None of that can be caught, so rt compares the
limit with what the import is measured to need first (:func:`check_address_space`), and turns
the failures that can be caught into one line (:func:`heavy_import`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from runtime.errors import InsufficientMemoryError
from runtime.fsutil import human_bytes

# VmPeak of ``import torch, sentence_transformers`` and loading all-MiniLM-L6-v2 on Linux
# x86-64 on 2 cores (torch 2.13 CPU): 1.39 GB, and it works under a 1.8 GB limit; `rt ask` segfaulted
# under 1.5 GB. More cores need more (a malloc arena and a stack per torch thread).
TORCH_ADDRESS_SPACE = 2_000_000_000

_MEMORY_WORDS = ("failed to map segment", "cannot allocate memory", "bad_alloc", "memoryerror",
                 "out of memory")


def address_space_limit() -> int | None:
    """The soft ``RLIMIT_AS`` of this process in bytes (``ulimit -v``), or None if unlimited or
    not a POSIX system."""
    if sys.platform == "win32":  # no such limit (job objects cap commit, reported as OOM)
        return None
    try:
        import resource
    except ImportError:  # another platform without it
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def address_space_hint() -> str:
    """``"; the address-space limit (ulimit -v) is 600 MB"``, or "" when there is none."""
    limit = address_space_limit()
    return f"; the address-space limit (ulimit -v) is {human_bytes(limit)}" if limit is not None else ""


def looks_like_memory_failure(text: str) -> bool:
    """Whether an error text from a library or a dead process says memory ran out."""
    lowered = text.lower()
    return any(word in lowered for word in _MEMORY_WORDS)


def check_address_space(needed: int, what: str) -> None:
    """Raise :class:`InsufficientMemoryError` if ``ulimit -v`` leaves less than ``needed`` bytes."""
    limit = address_space_limit()
    if limit is not None and limit < needed:
        raise InsufficientMemoryError(
            f"{what} needs about {human_bytes(needed)} of address space and the limit "
            f"(ulimit -v) is {human_bytes(limit)}",
            needed=needed, available=limit,
            hint="raise it (ulimit -v unlimited), or use rt ask --no-rag, which does not load torch",
        )


@contextlib.contextmanager
def heavy_import(what: str, module: str = "torch", needed: int = TORCH_ADDRESS_SPACE) -> Iterator[None]:
    """Around the import of a big native library (``module``): check the limit first unless it
    is already imported, and turn a MemoryError, or an ImportError from a library that could
    not be mapped, into an :class:`InsufficientMemoryError`."""
    if module not in sys.modules:
        check_address_space(needed, what)
    try:
        yield
    except MemoryError as exc:
        raise InsufficientMemoryError(f"{what} ran out of memory{address_space_hint()}", needed=needed,
                                      hint="close other programs or raise the limit") from exc
    except (ImportError, OSError) as exc:
        if not looks_like_memory_failure(str(exc)):
            raise
        raise InsufficientMemoryError(f"{what} failed for lack of memory ({exc}){address_space_hint()}",
                                      needed=needed, hint="close other programs or raise the limit") from exc
