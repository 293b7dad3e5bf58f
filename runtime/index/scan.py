"""Find the files to index under the paths given: globs, hidden folders, known binaries.

Globs match the path relative to the root given (with ``/`` separators, ``*`` crossing folders)
or the bare file name, so ``*.md``, ``drafts/*`` and ``notes/**/*.txt`` all do what they say.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import InputError
from runtime.index.readers import BINARY_SUFFIXES


@dataclass
class ScanResult:
    """Files to read, counts of what was skipped and why, and folders that could not be listed
    (``(path, reason)``: too long a path, no permission)."""

    files: list[Path] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[str, str]] = field(default_factory=list)


def path_key(path: str | Path) -> str:
    """``path`` as the index stores and shows it: itself, or with undecodable bytes escaped.

    A POSIX file name may hold bytes that are not UTF-8 (``bad\\xff.txt``); Python keeps them as
    lone surrogates, which SQLite, the terminal and JSON all refuse. They are written as
    ``\\xff`` escapes: the file is indexed and shown, under a name a person can read.
    """
    text = str(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no byte made (a Windows name, say)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _hidden(path: Path, entry_stat: os.stat_result | None = None) -> bool:
    if path.name.startswith("."):
        return True
    attributes = getattr(entry_stat, "st_file_attributes", 0)  # Windows only
    return bool(attributes & getattr(stat, "FILE_ATTRIBUTE_HIDDEN", 0))


def is_under(path: str, root: str | Path) -> bool:
    """True if the absolute path ``path`` is ``root`` or lies inside it."""
    text = str(root)
    return path == text or path.startswith(text.rstrip(os.sep) + os.sep)


def matches(relative: str, patterns: Sequence[str]) -> bool:
    """True if the relative posix path or its file name matches one of ``patterns``."""
    name = relative.rsplit("/", 1)[-1]
    return any(
        fnmatch.fnmatchcase(relative, p) or fnmatch.fnmatchcase(name, p)
        or fnmatch.fnmatchcase(relative, p.replace("**/", "")) for p in patterns
    )


def scan_root(root: Path, include: Sequence[str] = (), exclude: Sequence[str] = (),
              *, skip_under: Path | None = None) -> ScanResult:
    """Walk ``root`` (a folder or one file) and sort its files into indexable and skipped."""
    root = Path(root).expanduser().resolve()
    result = ScanResult()
    if not root.exists():
        raise InputError(f"{root} does not exist", hint="check the path given to rt index")
    if root.is_file():
        _consider(root, root.name, include, exclude, result, explicit=True)
        return result
    if not root.is_dir():
        raise InputError(f"{path_key(root)} is {_kind(root)}, not a file or folder",
                         hint="give rt index a folder or a regular file")

    def unlisted(error: OSError) -> None:
        where = path_key(error.filename or root)
        why = error.strerror or str(error)
        if error.errno == errno.ENAMETOOLONG:
            why += f" ({len(os.fsencode(error.filename or ''))} bytes; the system allows fewer)"
        result.problems.append((where, f"cannot list this folder: {why}"))
        result.skipped["unreadable"] += 1

    for folder, dirnames, filenames in os.walk(root, onerror=unlisted, followlinks=False):
        here = Path(folder)
        keep = []
        for d in sorted(dirnames):
            sub = here / d
            if _hidden(sub, _stat(sub)) or (skip_under is not None and sub == skip_under):
                result.skipped["hidden" if sub != skip_under else "index folder"] += 1
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            path = here / name
            _consider(path, path.relative_to(root).as_posix(), include, exclude, result)
    return result


def _kind(path: Path) -> str:
    mode = _stat(path)
    if mode is None:
        return "unreadable"
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode.st_mode):
            return name
    return "not a regular file"


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _consider(path: Path, relative: str, include: Sequence[str], exclude: Sequence[str],
              result: ScanResult, *, explicit: bool = False) -> None:
    if not explicit and _hidden(path, _stat(path)):
        result.skipped["hidden"] += 1
    elif (include and not matches(relative, include)) or (exclude and matches(relative, exclude)):
        result.skipped["excluded"] += 1
    elif path.suffix.lower() in BINARY_SUFFIXES:
        result.skipped["binary"] += 1
    elif not path.is_file():
        result.skipped["not a regular file"] += 1
    else:
        result.files.append(path)
