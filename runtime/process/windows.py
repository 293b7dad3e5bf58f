"""Windows facts rt's child processes depend on, through kernel32 (only called on Windows).

* A crashed child must not wait for a click: Windows Error Reporting shows a dialog for an
  unhandled exception (and one for a missing disk or DLL) and keeps the process alive until
  someone answers it, so a crash in llama.cpp would hang rt instead of being diagnosed.
  :func:`suppress_error_dialogs` turns them off for the child (inherited by its own children).
* A console program started from a GUI or ``pythonw`` host gets a new console window; without
  ``CREATE_NO_WINDOW`` every model load would flash one up (:func:`creation_flags`).

Tests replace :func:`kernel32` with a fake and fake ``sys.platform``.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)

SEM_FAILCRITICALERRORS = 0x0001
SEM_NOGPFAULTERRORBOX = 0x0002
SEM_NOOPENFILEERRORBOX = 0x8000
CREATE_NO_WINDOW = 0x08000000


def kernel32() -> Any:
    """kernel32.dll, loaded with ``use_last_error``."""
    return getattr(ctypes, "WinDLL")("kernel32", use_last_error=True)


def suppress_error_dialogs() -> None:
    """No Windows error dialog for this process's crashes; a no-op elsewhere."""
    if sys.platform != "win32":
        return
    try:
        kernel = kernel32()
        mode = SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX | SEM_NOOPENFILEERRORBOX
        kernel.SetErrorMode(kernel.GetErrorMode() | mode)  # keep any flag the parent set
    except (OSError, AttributeError) as exc:
        logger.debug("could not turn off Windows error dialogs: %s", exc)


def creation_flags() -> int:
    """``subprocess.Popen``'s ``creationflags`` for rt's children: ``CREATE_NO_WINDOW`` or 0.

    Only on Windows, and only when this process has no console (a GUI or ``pythonw`` host); a
    child of a console program shares that console, where its ``RT_DEBUG`` log belongs.
    """
    if sys.platform != "win32":
        return 0
    try:
        has_console = bool(kernel32().GetConsoleWindow())
    except (OSError, AttributeError):
        return 0
    return 0 if has_console else CREATE_NO_WINDOW
