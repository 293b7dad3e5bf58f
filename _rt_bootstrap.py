"""The ``rt`` console script's entry point: drop the working folder from ``sys.path`` first.

With ``PYTHONPATH=:`` or ``PYTHONPATH=.`` (common in shells and IDE run configurations) Python
puts the current folder on ``sys.path``, ahead of where rt is installed. A document folder
holding a ``runtime/`` or ``convert.py`` would then be imported as rt's own code the moment the
script imports ``runtime.cli``. This module is imported instead (a name no other project uses),
removes those entries, and only then imports rt. It imports nothing but the standard library.
"""

from __future__ import annotations

import os
import sys


def _same_folder(entry: str, folder: str) -> bool:
    try:
        return os.path.samefile(entry or os.curdir, folder)
    except OSError:  # a missing or unreadable entry cannot shadow anything here
        return False


def clean_sys_path(path: list[str], cwd: str, installed_at: str) -> list[str]:
    """``path`` without the entries naming ``cwd``, unless ``cwd`` is where rt is installed.

    Working inside rt's own checkout (``cwd == installed_at``) must keep importing it.
    """
    if _same_folder(cwd, installed_at):
        return list(path)
    return [entry for entry in path if not _same_folder(entry, cwd)]


def main() -> None:
    """Console-script entry point: clean ``sys.path``, then run rt's command line."""
    try:
        cwd = os.getcwd()
    except OSError:  # the working folder was deleted: nothing there to import
        cwd = ""
    if cwd:
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path[:] = clean_sys_path(sys.path, cwd, here)
    from runtime.cli import main as rt_main

    rt_main()
