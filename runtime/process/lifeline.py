"""rt's child processes end when their parent does, however the parent ends.

A parent killed with SIGKILL (or by the out-of-memory killer, or from Task Manager) runs no
cleanup, and neither Linux nor Windows ends its children with it: a model process in the middle
of a long prompt, or a quantizer with minutes of work left, would run on as an orphan. The
parent names itself in ``RT_PARENT_PID`` (:func:`runtime.process.launch.child_environment`)
and the child calls :func:`watch_parent` first thing: a daemon thread that ends the child with
``os._exit`` once the parent is gone. The thread runs while the main thread is inside
llama.cpp, since ctypes releases the GIL around native calls.

On POSIX it polls ``os.getppid()``, which changes when the parent dies (the child is handed to
init or a subreaper), and whether the pid in ``RT_PARENT_PID`` still exists.
``PR_SET_PDEATHSIG`` is not used: it fires when the parent *thread* that started the child
exits, which would kill a model loaded from a short-lived thread. On Windows the thread waits
on a handle to the parent process, which is signalled when it exits.
"""

from __future__ import annotations

import os
import sys
import threading
import time

PARENT_PID_VARIABLE = "RT_PARENT_PID"
POLL_SECONDS = 0.2
EXIT_CODE = 70  # what the child exits with when it outlives its parent


def _parent_pid() -> int | None:
    try:
        return int(os.environ[PARENT_PID_VARIABLE])
    except (KeyError, ValueError):
        return None


def _parent_alive(parent: int) -> bool:
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _watch_posix(parent: int) -> None:
    # sys.executable may be a wrapper that starts the interpreter as its own child: the
    # interpreter's parent is then the wrapper, so watch both it and rt's own process
    first_parent = os.getppid()
    while os.getppid() == first_parent and _parent_alive(parent):
        time.sleep(POLL_SECONDS)
    os._exit(EXIT_CODE)


def _watch_windows(parent: int) -> None:
    import ctypes

    from runtime.process.windows import kernel32 as load_kernel32

    synchronize, infinite = 0x00100000, 0xFFFFFFFF
    kernel32 = load_kernel32()
    kernel32.OpenProcess.restype = ctypes.c_void_p
    kernel32.WaitForSingleObject.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    handle = kernel32.OpenProcess(synchronize, False, parent)
    if handle:  # no handle: the parent is already gone
        kernel32.WaitForSingleObject(handle, infinite)
    os._exit(EXIT_CODE)


def watch_parent() -> None:
    """End this process (``os._exit``) as soon as the process named in ``RT_PARENT_PID`` ends.

    Does nothing when the variable is not set (a child started by hand, for debugging).
    """
    parent = _parent_pid()
    if parent is None:
        return
    target = _watch_windows if sys.platform == "win32" else _watch_posix
    threading.Thread(target=target, args=(parent,), name="rt-lifeline", daemon=True).start()
