"""How rt starts its own Python child processes (the model process, the quantizer).

``python -m pkg`` puts the current directory first on ``sys.path``: a child started that way in
a folder holding a ``runtime/``, ``convert.py`` or ``llama_cpp/`` of the user's would import and
run it. Python 3.10 has no ``-P`` (and ``-I`` would also drop ``PYTHONPATH`` and the user's
site-packages, where rt itself may be installed), so the child starts with a short ``-c``
bootstrap instead: it replaces ``sys.path[0]`` (the current directory, for ``-c``) with the
folder that holds rt's own packages, then runs the module as ``__main__``. Python inserts that
entry only after its start-up imports, so nothing from the current directory is imported before
the bootstrap runs. This works the same on every supported version and on Windows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from runtime.process.lifeline import PARENT_PID_VARIABLE

# The folder that holds rt's ``runtime/`` and ``convert/`` packages.
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])

# Under PYTHONSAFEPATH (3.11+) ``-c`` adds no current-directory entry: then rt's folder is
# inserted, not written over the first real entry (the stdlib's zip on Windows' embeddable Python).
_BOOTSTRAP = (
    "import sys, runpy; sys.path[0:0 if getattr(sys.flags, 'safe_path', False) else 1] = [sys.argv[1]]; "
    "module = sys.argv[2]; del sys.argv[1:3]; runpy.run_module(module, run_name='__main__', alter_sys=True)"
)


def python_command(module: str, *args: str) -> list[str]:
    """The command line that runs rt's ``module`` as ``__main__`` with rt's own import path."""
    return [sys.executable, "-c", _BOOTSTRAP, PROJECT_ROOT, module, *args]


def child_environment() -> dict[str, str]:
    """The environment for rt's child processes: this process's, with a safe ``PYTHONPATH``.

    rt's package folder goes first, and entries that would resolve against the child's current
    directory (empty or relative ones, as ``PYTHONPATH=:/opt/lib`` has) are dropped.
    ``RT_PARENT_PID`` names this process, so the child ends with it
    (:func:`runtime.process.lifeline.watch_parent`).
    """
    environ = dict(os.environ)
    environ[PARENT_PID_VARIABLE] = str(os.getpid())
    kept = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.isabs(p)]
    environ["PYTHONPATH"] = os.pathsep.join([PROJECT_ROOT, *(p for p in kept if p != PROJECT_ROOT)])
    return environ
