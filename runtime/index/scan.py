"""Find the files to index under the paths given: globs, hidden folders, known binaries.

Globs match the path relative to the root given (with ``/`` separators, ``*`` crossing folders)
or the bare file name, so ``*.md``, ``drafts/*`` and ``notes/**/*.txt`` all do what they say.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import InputError
from runtime.index.readers import BINARY_SUFFIXES
from runtime.text import repair_surrogates

# Skip reasons whose files are named in the report (the others are a person's choice, hidden
# folders like .git with thousands of files, or named elsewhere: unreadable, empty).
NAMED_REASONS = ("too large", "binary", "not a regular file", "symlink")
NAMES_KEPT = 20  # per reason: the report stays small whatever the folder holds


@dataclass
class Skipped:
    """Counts of skipped files by reason, and the first :data:`NAMES_KEPT` paths (as shown) of
    each reason in :data:`NAMED_REASONS`."""

    counts: Counter[str] = field(default_factory=Counter)
    names: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, path: str | Path | None = None) -> None:
        self.counts[reason] += 1
        if path is not None and reason in NAMED_REASONS:
            kept = self.names.setdefault(reason, [])
            if len(kept) < NAMES_KEPT:
                kept.append(shown(path_key(path)) if isinstance(path, Path) else shown(path))


@dataclass
class ScanResult:
    """Files to read, what was skipped and why, and folders that could not be listed
    (``(path, reason)``: too long a path, no permission)."""

    files: list[Path] = field(default_factory=list)
    skipped_files: Skipped = field(default_factory=Skipped)
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def skipped(self) -> Counter[str]:
        return self.skipped_files.counts


# Keys are the paths themselves wherever Python's str is plain Unicode, which is every name that
# is valid UTF-8 (so indexes made before keep their keys). A name with undecodable bytes holds
# lone surrogates, which SQLite refuses; each becomes NUL plus hex. No real path holds a NUL, so
# such a key never equals another file's, and the byte is recovered exactly.
_ESCAPE = "\x00"
_ESCAPED = re.compile("\x00(u[0-9a-f]{4}|[0-9a-f]{2})")


def path_key(path: str | Path) -> str:
    """``path`` as the index stores it: lossless, and ``path`` itself when it is valid Unicode.

    A POSIX file name may hold bytes that are not UTF-8 (``bad\\xff.txt``); Python keeps them as
    lone surrogates U+DC80..U+DCFF, written here as NUL and two hex digits (other lone surrogates,
    from a Windows name, as NUL, ``u`` and four). :func:`shown` turns a key into the name people
    see; :func:`key_path` gives the path back.
    """
    return repair_surrogates(str(path), _escape)


def _escape(char: str) -> str:
    code = ord(char)
    return f"{_ESCAPE}{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"{_ESCAPE}u{code:04x}"


def key_path(key: str) -> Path:
    """The path whose :func:`path_key` is ``key``."""
    if _ESCAPE not in key:
        return Path(key)
    return Path(_ESCAPED.sub(lambda m: chr(int(m[1][1:], 16) if m[1][0] == "u" else 0xDC00 + int(m[1], 16)),
                            key))


def shown(key: str) -> str:
    """A key as people see it: escaped bytes written ``\\xff`` (a surrogate ``\\ud800``)."""
    if _ESCAPE not in key:
        return key
    return _ESCAPED.sub(lambda m: "\\" + (m[1] if m[1][0] == "u" else "x" + m[1]), key)


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
              *, skip_under: Path | None = None, follow_symlinks: bool = False) -> ScanResult:
    """Walk ``root`` (a folder or one file) and sort its files into indexable and skipped.

    Symbolic links inside ``root`` (to files or folders) are skipped and counted unless
    ``follow_symlinks``: a link to ``/etc/passwd`` in a shared folder would otherwise put that
    file's text in the index. ``root`` itself is followed: it was named on purpose.
    """
    root = Path(root).expanduser().resolve()
    result = ScanResult()
    if not root.exists():
        raise InputError(f"{shown(path_key(root))} does not exist", hint="check the path given to rt index")
    if root.is_file():
        _consider(root, root.name, include, exclude, result, explicit=True)
        return result
    if not root.is_dir():
        raise InputError(f"{shown(path_key(root))} is {_kind(root)}, not a file or folder",
                         hint="give rt index a folder or a regular file")

    def unlisted(error: OSError) -> None:
        where = shown(path_key(error.filename or root))
        why = error.strerror or str(error)
        if error.errno == errno.ENAMETOOLONG:
            why += f" ({len(os.fsencode(error.filename or ''))} bytes; the system allows fewer)"
        result.problems.append((where, f"cannot list this folder: {why}"))
        result.skipped["unreadable"] += 1

    visited: set[tuple[int, int]] = set()  # folders walked, by (device, inode): a link cycle ends
    for folder, dirnames, filenames in os.walk(root, onerror=unlisted, followlinks=follow_symlinks):
        here = Path(folder)
        if follow_symlinks and not _first_visit(here, visited):
            dirnames[:] = []
            continue
        keep = []
        for d in sorted(dirnames):
            sub = here / d
            if _hidden(sub, _stat(sub)) or (skip_under is not None and sub == skip_under):
                result.skipped["hidden" if sub != skip_under else "index folder"] += 1
            elif not follow_symlinks and _is_link(sub):
                result.skipped_files.add("symlink", sub)
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            path = here / name
            if not follow_symlinks and _is_link(path):
                result.skipped_files.add("symlink", path)
                continue
            _consider(path, path.relative_to(root).as_posix(), include, exclude, result)
    return result


# Windows' links: symlinks (S_ISLNK) and junctions (mount points), which os.walk follows on
# Python < 3.12 and which point anywhere just the same.
_LINK_TAGS = (0xA000000C, 0xA0000003)  # IO_REPARSE_TAG_SYMLINK, _MOUNT_POINT (Windows-only in stat)


def _is_link(path: Path) -> bool:
    try:  # Path.is_symlink raises on a name too long before Python 3.12
        facts = os.lstat(path)
    except (OSError, ValueError):
        return False
    return stat.S_ISLNK(facts.st_mode) or getattr(facts, "st_reparse_tag", 0) in _LINK_TAGS


def _first_visit(folder: Path, visited: set[tuple[int, int]]) -> bool:
    facts = _stat(folder)
    if facts is None:
        return True
    key = (facts.st_dev, facts.st_ino)
    if key in visited:
        return False
    visited.add(key)
    return True


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
        result.skipped_files.add("binary", path)
    elif not path.is_file():
        result.skipped_files.add("not a regular file", path)
    else:
        result.files.append(path)
