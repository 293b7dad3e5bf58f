"""Crash-safe file writing and disk-space checks shared by every writer in rt.

Write to a temporary name in the target folder, fsync, then rename over the final name: an
interrupted run (Ctrl-C, kill -9, power loss) never leaves a half file under the final name.
Temporary names carry ``TMP_MARK`` and the writing process's pid, so a later run sweeps the
leftovers of dead writers and never a file another live process is still writing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from runtime.errors import InsufficientDiskError

TMP_MARK = ".rt-tmp-"


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KB'``; decimal units, as disks and downloads are sold."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def temp_path_for(final: Path) -> Path:
    """A unique temporary name beside ``final`` (same folder, so the rename is atomic).

    ``.rt-tmp-PID-RANDOM-NAME``: the pid tells :func:`sweep_temp_files` whether its writer lives.
    """
    return final.with_name(f"{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}-{final.name}")


_TEMP_OWNER = re.compile(rf"{re.escape(TMP_MARK)}(\d+)-[0-9a-f]{{8}}-")


def temp_owner_alive(path: Path) -> bool:
    """Whether the process that named the temporary file ``path`` still runs.

    A name without a pid (written by an older rt) has no known owner and counts as dead. A pid
    reused by an unrelated process keeps the file until that process ends: never a wrong delete.
    """
    match = _TEMP_OWNER.match(path.name)
    if match is None:
        return False
    import psutil

    try:
        return bool(psutil.Process(int(match.group(1))).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # AccessDenied: it exists
        return True


def _fsync_dir(folder: Path) -> None:
    if os.name == "nt":  # Windows cannot open a directory for fsync; the rename is durable enough
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write; on success fsync it and rename it to ``final``.

    On any exception (KeyboardInterrupt included) the temporary file is removed and ``final``
    is left exactly as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(final)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(final: Path | str, data: bytes) -> None:
    """Write ``data`` to ``final`` through :func:`atomic_path`."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def sweep_temp_files(folder: Path) -> list[Path]:
    """Remove leftovers of interrupted writes in ``folder`` whose writer is dead; return them.

    Temporary files of live processes (another ``rt convert`` into the same folder) are kept.
    """
    removed: list[Path] = []
    if folder.is_dir():
        for leftover in folder.glob(f"{TMP_MARK}*"):
            if temp_owner_alive(leftover):
                continue
            with contextlib.suppress(OSError):
                leftover.unlink()
                removed.append(leftover)
    return removed


def free_space(folder: Path) -> int:
    """Free bytes on the disk holding ``folder`` (or its nearest existing parent)."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def ensure_free_space(folder: Path, needed: int, what: str) -> None:
    """Raise :class:`InsufficientDiskError` unless ``folder``'s disk has ``needed`` bytes free."""
    available = free_space(folder)
    if available < needed:
        raise InsufficientDiskError(
            f"{what} needs {human_bytes(needed)} on the disk of {folder}, "
            f"{human_bytes(available)} is free",
            needed=needed,
            available=available,
            hint="free some space or choose another folder",
        )
