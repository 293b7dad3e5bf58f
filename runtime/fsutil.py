"""Crash-safe file writing and disk-space checks shared by every writer in rt.

Write to a temporary name in the target folder, fsync, then rename over the final name: an
interrupted run (Ctrl-C, kill -9, power loss) never leaves a half file under the final name.
Temporary names carry ``TMP_MARK`` and the writing process's pid, so a later run sweeps the
leftovers of dead writers and never a file another live process is still writing.

Windows refuses to replace or delete a file another program holds open (a GGUF a running
``rt serve`` has mapped, a manifest being read, a file an antivirus scanner is looking at):
such refusals are retried for about two seconds, checked before a long write starts, and when
they last, the finished file is kept under a ``.new`` name and :class:`FileInUseError` says where.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from runtime.errors import FileInUseError, InsufficientDiskError, PathTooLongError

logger = logging.getLogger(__name__)

T = TypeVar("T")

TMP_MARK = ".rt-tmp-"
# Renaming the target away and back is how rt asks Windows whether it could replace it.
PROBE_MARK = ".rt-probe-"
# Whether the platform refuses to replace or delete a file that another program holds open
# (Windows does; POSIX replaces the name and the holder keeps the old file).
REPLACE_REFUSED_WHILE_OPEN = os.name == "nt"
# Windows' answers for a file held by someone else: ERROR_ACCESS_DENIED (5, also a file still
# pending delete), ERROR_SHARING_VIOLATION (32), ERROR_LOCK_VIOLATION (33), ERROR_USER_MAPPED_FILE
# (1224, a mapped file cannot be overwritten).
IN_USE_WINERRORS = frozenset({5, 32, 33, 1224})
# Antivirus scanners and the search indexer hold a new or changed file for a moment: about two
# seconds of retries, doubling, outlast them; a loaded model is held until its program ends.
IN_USE_RETRY_WAITS = (0.05, 0.1, 0.2, 0.4, 0.6, 0.65)
# Windows' MAX_PATH counts the terminating NUL: a path of 260 characters is already too long.
WINDOWS_MAX_PATH = 260
LONG_PATH_HINT = (
    "enable Windows long paths (set LongPathsEnabled to 1 under "
    "HKLM\\SYSTEM\\CurrentControlSet\\Control\\FileSystem, then sign in again) or use a shorter "
    "folder (RT_HOME, RT_MODELS, RT_INDEX or --out)"
)


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


def file_in_use(exc: BaseException) -> bool:
    """Whether ``exc`` is Windows saying another program holds the file (not a real denial)."""
    return isinstance(exc, PermissionError) and getattr(exc, "winerror", None) in IN_USE_WINERRORS


def retry_in_use(action: Callable[[], T], what: str = "") -> T:
    """``action()``, tried again for about two seconds while Windows says the file is in use."""
    for wait in (*IN_USE_RETRY_WAITS, None):
        try:
            return action()
        except PermissionError as exc:
            if wait is None or not file_in_use(exc):
                raise
            logger.debug("%s: in use (%s), trying again in %.2f s", what, exc, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")  # the last try either returns or raises


def _long_paths_enabled() -> bool:
    if sys.platform != "win32":
        return False
    try:  # ImportError: a test imitating Windows on another system
        import winreg

        key = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SYSTEM\CurrentControlSet\Control\FileSystem")
        with key:
            return bool(winreg.QueryValueEx(key, "LongPathsEnabled")[0])
    except (ImportError, OSError):
        return False


def check_path_length(final: Path | str) -> None:
    """Raise :class:`PathTooLongError` if Windows could not create ``final`` (or its temporary
    name, the longest name rt gives it) for want of long-path support."""
    if sys.platform != "win32":
        return
    longest = str(temp_path_for(Path(final)).absolute())
    if len(longest) < WINDOWS_MAX_PATH or _long_paths_enabled():
        return
    raise PathTooLongError(
        f"{final} is too long for Windows: {len(longest)} characters with rt's temporary name, "
        f"the limit without long-path support is {WINDOWS_MAX_PATH - 1}",
        path=final, hint=LONG_PATH_HINT)


def check_replaceable(final: Path | str) -> None:
    """Raise :class:`FileInUseError` now, before a long write, if ``final`` exists and another
    program holds it so that Windows would refuse to replace it at the end.

    The probe renames ``final`` away and back: Windows needs the same delete access for that as
    for replacing it. Elsewhere replacing always works and nothing is probed.
    """
    final = Path(final)
    if not REPLACE_REFUSED_WHILE_OPEN or not final.is_file():
        return
    # For the instant between the two renames the file is missing under its name, as it is
    # while any replace runs; a program that opens it then sees what it would see then.
    probe = final.with_name(f"{PROBE_MARK}{os.getpid()}-{final.name}")
    try:
        retry_in_use(lambda: os.rename(final, probe), str(final))
    except FileNotFoundError:  # removed meanwhile: nothing to replace
        return
    except PermissionError as exc:
        if not file_in_use(exc):
            raise
        raise FileInUseError(
            f"{final} is in use by another program (a running rt serve or rt chat?); nothing was written",
            path=final, hint="close that program and try again, or write elsewhere with --out") from exc
    retry_in_use(lambda: os.rename(probe, final), str(probe))


def check_target(final: Path | str) -> None:
    """The checks to make before a long write to ``final``: its path length and whether it can
    be replaced (see :func:`check_path_length` and :func:`check_replaceable`)."""
    check_path_length(final)
    check_replaceable(final)


def kept_path_for(final: Path) -> Path:
    """Where a finished file is kept when ``final`` cannot be replaced: ``NAME.new.SUFFIX``."""
    return final.with_name(f"{final.stem}.new{final.suffix}")


def replace_in_use(tmp: Path, final: Path, *, keep: bool = True) -> None:
    """``os.replace(tmp, final)``, retried while Windows says ``final`` is in use.

    If it stays in use, ``tmp`` is renamed to :func:`kept_path_for` (with ``keep``; otherwise
    it is left for the caller to remove) and :class:`FileInUseError` says where it is.
    """
    try:
        retry_in_use(lambda: os.replace(tmp, final), str(final))
        return
    except PermissionError as exc:
        if not file_in_use(exc):
            raise
        held = exc
    what = f"{final} is in use by another program (a running rt serve or rt chat?)"
    if keep:
        kept = kept_path_for(final)
        try:
            retry_in_use(lambda: os.replace(tmp, kept), str(kept))
        except OSError:
            logger.warning("could not keep the new file as %s either", kept, exc_info=True)
        else:
            raise FileInUseError(f"{what}; the new file is kept at {kept}", path=final, kept=kept,
                                 hint=f"close that program and move {kept} to {final}") from held
    raise FileInUseError(f"{what}; it was not replaced", path=final,
                         hint="close that program and try again") from held


@contextlib.contextmanager
def atomic_path(final: Path | str, *, keep_if_in_use: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success fsync it and rename it to ``final``.

    On any exception (KeyboardInterrupt included) the temporary file is removed and ``final``
    is left exactly as it was. Before anything is written, a path too long for Windows or a
    ``final`` another program holds is refused; a ``final`` still held at the end keeps the
    finished file beside it (see :func:`replace_in_use`) unless ``keep_if_in_use`` is false.
    """
    final = Path(final)
    check_path_length(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    check_replaceable(final)
    tmp = temp_path_for(final)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        replace_in_use(tmp, final, keep=keep_if_in_use)
        _fsync_dir(final.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(final: Path | str, data: bytes, *, keep_if_in_use: bool = False) -> None:
    """Write ``data`` to ``final`` through :func:`atomic_path`.

    Small files (a manifest, a cache) are cheap to write again: by default one that cannot
    replace a held ``final`` is dropped, not kept beside it.
    """
    with atomic_path(final, keep_if_in_use=keep_if_in_use) as tmp:
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
