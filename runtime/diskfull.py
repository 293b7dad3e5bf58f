"""A disk that fills up mid-write, told as one rt error with the numbers.

``rt convert`` checks free space before it writes, but another program may fill the disk
meanwhile, and estimates (K-quant mixes, metadata) can be short. The OS then reports ENOSPC
(or EDQUOT, a user's quota) from some ``write`` or ``close`` deep inside gguf-py, shutil or
huggingface_hub; without this it reached the person as "internal error: OSError".
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Iterator
from pathlib import Path

from runtime.errors import InsufficientDiskError, RtError
from runtime.fsutil import free_space, human_bytes

# Windows' ERROR_DISK_FULL and ERROR_HANDLE_DISK_FULL arrive as OSError with errno ENOSPC.
_DISK_FULL = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)


# numpy's ndarray.tofile (what gguf-py writes tensors with) reports a short write without an
# errno: "OSError: 19200 requested and 4816 written". On a local disk that is a full disk.
_SHORT_WRITE = re.compile(r"^\d+ requested and \d+ written$")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is the OS saying the disk (or the user's quota) has no room left."""
    if not isinstance(exc, OSError) or isinstance(exc, RtError):
        return False
    if exc.errno in _DISK_FULL:
        return True
    return exc.errno is None and bool(_SHORT_WRITE.match(str(exc)))


def _size(path: Path) -> int:
    """Bytes in the file ``path``, or in the files under the folder ``path`` (a download cache)."""
    try:
        if not path.is_dir():
            return path.stat().st_size
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    except OSError:
        return 0


def disk_full_error(partial: Path, what: str, exc: OSError, *, expected: int | None = None,
                    kept: bool = False) -> InsufficientDiskError:
    """The error for a disk that filled while ``what`` was written to ``partial``.

    ``expected`` is the whole file's (estimated) size; ``kept`` says the partial file stays
    (a download resumes from it) rather than being removed by the caller. ``partial`` may be a
    folder (huggingface_hub's cache of one repo): its files are counted.
    """
    folder = partial if partial.is_dir() else partial.parent
    written = _size(partial)
    try:
        available = free_space(folder)
    except OSError:
        available = 0
    of_total = f" of about {human_bytes(expected)}" if expected else ""
    kept_as = "what was downloaded" if partial.is_dir() else f"the partial file ({partial.name})"
    fate = f"{kept_as} was kept: rerun to resume" if kept else "the partial file was removed"
    missing = max((expected or 0) - written - available, 0)
    hint = (f"free at least {human_bytes(missing)} there" if missing else "free some space there") + (
        " or choose another folder (--out)")
    return InsufficientDiskError(
        f"the disk of {folder} filled up ({exc.strerror or 'No space left on device'}) while {what}: "
        f"{human_bytes(written)}{of_total} written, "
        f"{human_bytes(available)} free; {fate}",
        needed=expected or written,
        available=available,
        hint=hint,
    )


@contextlib.contextmanager
def disk_full_errors(partial: Path, what: str, *, expected: int | None = None, kept: bool = False) -> Iterator[None]:
    """Raise :func:`disk_full_error` in place of a disk-full OSError from the block.

    Use it inside ``atomic_path`` (``with atomic_path(out) as tmp, disk_full_errors(tmp, ...)``)
    so that the partial file is measured before ``atomic_path`` removes it.
    """
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise disk_full_error(partial, what, exc, expected=expected, kept=kept) from exc
