"""Imitations of Windows' file rules for tests that run on Linux.

Windows refuses to replace, rename or delete a file another program holds open (a model a
running ``rt serve`` has mapped) with ``PermissionError`` carrying ``winerror`` 32
(ERROR_SHARING_VIOLATION); a file mid-replace can also refuse to be opened for reading.
:class:`HeldFiles` makes ``os.replace``, ``os.rename``, ``os.unlink``/``os.remove`` (and so
``Path.replace``/``rename``/``unlink``) answer that way for paths registered as held, and sets
``runtime.fsutil.REPLACE_REFUSED_WHILE_OPEN`` as on Windows. A hold can be transient: released
after a number of refused attempts, as an antivirus scanner lets go.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SHARING_VIOLATION = 32


def sharing_violation(path: object) -> PermissionError:
    """The exception Windows raises for a file in use (``winerror`` set as CPython sets it there)."""
    exc = PermissionError(errno.EACCES, "The process cannot access the file because it is being "
                          "used by another process", str(path))
    if getattr(exc, "winerror", None) is None:  # only Windows' CPython fills it from the 4th argument
        exc.winerror = SHARING_VIOLATION  # type: ignore[misc]
    return exc


class HeldFiles:
    """Paths "held open by another program"; see the module docstring."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._held: dict[str, int | None] = {}  # path -> refusals left (None: until released)
        self._reads: set[str] = set()
        self.refused: list[tuple[str, str]] = []  # (operation, path) of every refusal
        real_replace, real_rename, real_unlink = os.replace, os.rename, os.unlink
        real_open = builtins.open

        def guard(operation: str, *paths: Any) -> None:
            for path in paths:
                key = self._key(path)
                if key in self._held:
                    left = self._held[key]
                    if left is not None:
                        if left <= 1:
                            del self._held[key]
                        else:
                            self._held[key] = left - 1
                    self.refused.append((operation, key))
                    raise sharing_violation(path)

        def replace(src: Any, dst: Any, **kw: Any) -> None:
            guard("replace", src, dst)
            real_replace(src, dst, **kw)

        def rename(src: Any, dst: Any, **kw: Any) -> None:
            guard("rename", src, dst)
            real_rename(src, dst, **kw)

        def unlink(path: Any, **kw: Any) -> None:
            guard("unlink", path)
            real_unlink(path, **kw)

        def open_(file: Any, *args: Any, **kw: Any) -> Any:
            if isinstance(file, (str, bytes, os.PathLike)) and self._key(file) in self._reads:
                guard("open", file)
            return real_open(file, *args, **kw)

        import runtime.fsutil

        monkeypatch.setattr(runtime.fsutil, "REPLACE_REFUSED_WHILE_OPEN", True)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(os, "unlink", unlink)
        monkeypatch.setattr(os, "remove", unlink)
        monkeypatch.setattr(builtins, "open", open_)
        monkeypatch.setattr(io, "open", open_)

    @staticmethod
    def _key(path: Any) -> str:
        return os.path.abspath(os.fsdecode(path))

    def hold(self, path: Path | str, *, refusals: int | None = None, reads: bool = False) -> None:
        """Hold ``path``: until :meth:`release`, or for ``refusals`` refused attempts; with
        ``reads``, opening it is refused too (a reader racing a replace)."""
        key = self._key(path)
        self._held[key] = refusals
        if reads:
            self._reads.add(key)

    def release(self, path: Path | str) -> None:
        key = self._key(path)
        self._held.pop(key, None)
        self._reads.discard(key)

    def held(self, path: Path | str) -> bool:
        return self._key(path) in self._held


@pytest.fixture
def held_files(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldFiles]:
    """Windows' refusal to replace or delete files held open, imitated (see :class:`HeldFiles`)."""
    yield HeldFiles(monkeypatch)
