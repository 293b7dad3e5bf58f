"""What a dead model process's exit status means, in words a person can act on.

On POSIX, ``subprocess`` reports death by signal as a negative exit code (``-11`` is
SIGSEGV). On Windows a native crash shows as an NTSTATUS exit code (``0xC0000005``), which
arrives unsigned (3221225477) from ``subprocess`` but signed (-1073741819) from some tools and
logs: both are read as the same status. The C runtime's ``abort()`` exits with code 3 on Windows.

Unless ``RT_DEBUG`` is set, the model process's stderr goes to a file rather than the
terminal: a llama.cpp abort prints a backtrace and faulthandler the Python stacks of every
thread (about 100 lines). :func:`log_detail` picks the one line of it that says what failed
(``GGML_ASSERT(...) failed``, ``std::bad_alloc``, a Python ``MemoryError``), and
:func:`diagnose` adds it to its one-line message.
"""

from __future__ import annotations

import re
import signal
import sys
from typing import Any, Callable

from runtime.errors import ModelCrashedError, RtError
from runtime.fsutil import human_bytes
from runtime.limits import address_space_hint, looks_like_memory_failure

_OOM_HINT = "try a smaller --ctx, --kv-type q8_0 or a smaller quantization, or close other programs"
_NATIVE_HINT = "check the file with `rt info MODEL`; RT_DEBUG=1 shows llama.cpp's log"

# signal name -> (what it means, what to do)
_SIGNALS: dict[str, tuple[str, str]] = {
    "SIGSEGV": ("a native crash (segmentation fault) inside llama.cpp", _NATIVE_HINT),
    "SIGBUS": ("a bus error: the mapped model file shrank or changed while in use, or a disk read failed",
               "do not modify the GGUF while it is loaded; check the disk"),
    "SIGILL": ("an illegal instruction: this llama.cpp build uses CPU instructions this machine lacks",
               "reinstall llama-cpp-python so it is built for this CPU"),
    "SIGABRT": ("an abort: llama.cpp failed one of its own checks", _NATIVE_HINT),
    "SIGFPE": ("an arithmetic fault inside llama.cpp", _NATIVE_HINT),
    "SIGKILL": ("killed, most likely by the operating system's out-of-memory killer", _OOM_HINT),
    "SIGTERM": ("terminated by another process", "run it again"),
}

# Windows NTSTATUS exit codes
_NTSTATUS: dict[int, tuple[str, str, str]] = {
    0xC0000005: ("0xC0000005 access violation", "a native crash inside llama.cpp", _NATIVE_HINT),
    0xC000001D: ("0xC000001D illegal instruction", "this llama.cpp build uses CPU instructions this machine lacks",
                 "reinstall llama-cpp-python so it is built for this CPU"),
    0xC00000FD: ("0xC00000FD stack overflow", "a native crash inside llama.cpp", _NATIVE_HINT),
    0xC0000409: ("0xC0000409 fast fail", "llama.cpp aborted on a failed check", _NATIVE_HINT),
    0xC0000017: ("0xC0000017 no memory", "the system ran out of memory", _OOM_HINT),
    0xC000012D: ("0xC000012D commit limit", "the system ran out of memory (commit limit reached)", _OOM_HINT),
    0xC0000374: ("0xC0000374 heap corruption", "a native crash inside llama.cpp (its heap was corrupted)",
                 _NATIVE_HINT),
    0xC000013A: ("0xC000013A Ctrl-C", "it was stopped by Ctrl-C or by closing the console window",
                 "run it again"),
}
_WINDOWS_ABORT = 3  # what abort() exits with under the Microsoft C runtime
_ABORT_MEANING = ("an abort: llama.cpp failed one of its own checks", _NATIVE_HINT)


# lines of a dead process's stderr worth quoting, most telling first
_DETAIL_PATTERNS = (
    re.compile(r"GGML_ASSERT\(.*\) failed|GGML_ABORT.*|[^\s/]+\.(?:c|cpp|h):\d+: .+"),
    re.compile(r"terminate called after throwing .*|what\(\): .+"),
    re.compile(r"^(?:[A-Za-z_.]*(?:Error|Exception)|MemoryError)\b.*"),  # a Python traceback's last line
)


def log_detail(log_tail: str) -> str | None:
    """The line of a dead process's stderr that says what failed, or None."""
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    for pattern in _DETAIL_PATTERNS:
        found = [m.group(0) for line in lines if (m := pattern.search(line))]
        if found:
            detail = found[0] if pattern is _DETAIL_PATTERNS[0] else found[-1]
            return detail if len(detail) <= 300 else detail[:297] + "..."
    return None


def _memory_note(memory: Any) -> str:
    if memory is None:
        return ""
    return (f"; the load was estimated at {human_bytes(memory.total)} "
            f"with {human_bytes(memory.available)} available")


def diagnose(exitcode: int | None, *, memory: Any = None, repack: bool = False,
             log_tail: str = "", started: bool = True,
             refusal: Callable[[str], RtError | None] | None = None) -> ModelCrashedError:
    """A :class:`ModelCrashedError` explaining how the model process ended.

    ``memory`` (a :class:`runtime.models.memory.MemoryEstimate`) adds the estimate to an OOM message;
    ``repack`` adds "try without --repack" to a native-crash hint. ``log_tail`` (the end of the
    process's captured stderr) adds the line that says what failed; ``started=False`` (it died
    before answering its first request) says that it could not start. ``refusal`` reads a log line
    in the caller's terms (the model's worker passes the memory preflight's reader, which knows
    Windows' "The paging file is too small"): an error it returns makes the hint; process/ itself
    knows nothing of models.
    """
    error = _diagnose(exitcode, memory=memory, repack=repack)
    detail = log_detail(log_tail)
    if not started and exitcode is not None and exitcode >= 0 and not _is_windows_status(exitcode):
        error = ModelCrashedError(f"the model process could not start (exit code {exitcode})",
                                  returncode=exitcode, hint=error.hint)
    if detail:
        error.message += f" ({detail})"
    if detail and looks_like_memory_failure(detail):
        error.hint = "the system or a limit refused memory" + address_space_hint() + "; " + _OOM_HINT
    elif detail and refusal is not None:
        refused = refusal(detail)
        if refused is not None:
            error.message += _memory_note(memory)
            error.hint = "the system refused memory; " + (refused.hint or _OOM_HINT)
    return error


def _is_ntstatus(exitcode: int) -> bool:
    """Whether ``exitcode`` (signed or unsigned) is an NTSTATUS warning or error (its top bit set)."""
    return exitcode < -255 or (exitcode > 255 and bool(exitcode & 0x80000000))


def _is_windows_status(exitcode: int) -> bool:
    return _is_ntstatus(exitcode) or (sys.platform == "win32" and exitcode == _WINDOWS_ABORT)


def _diagnose(exitcode: int | None, *, memory: Any = None, repack: bool = False) -> ModelCrashedError:
    if exitcode is None:
        return ModelCrashedError("the model process stopped answering", hint="run it again; RT_DEBUG=1 shows more")
    if exitcode < 0 and not _is_ntstatus(exitcode):
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        meaning, hint = _SIGNALS.get(name, ("an unexpected signal", _NATIVE_HINT))
        if name == "SIGKILL":
            meaning += _memory_note(memory)
        if repack and hint is _NATIVE_HINT:
            hint = "try without --repack; " + hint
        return ModelCrashedError(f"the model process died with {name}: {meaning}", returncode=exitcode, hint=hint)
    code = exitcode & 0xFFFFFFFF
    if code in _NTSTATUS:
        label, meaning, hint = _NTSTATUS[code]
        if hint is _OOM_HINT:
            meaning += _memory_note(memory)
        if repack and hint is _NATIVE_HINT:
            hint = "try without --repack; " + hint
        return ModelCrashedError(f"the model process died with {label}: {meaning}", returncode=exitcode, hint=hint)
    if _is_ntstatus(exitcode):
        return ModelCrashedError(f"the model process died with Windows status 0x{code:08X}",
                                 returncode=exitcode, hint=_NATIVE_HINT)
    if exitcode == _WINDOWS_ABORT and sys.platform == "win32":
        meaning, hint = _ABORT_MEANING
        if repack:
            hint = "try without --repack; " + hint
        return ModelCrashedError(f"the model process exited with code 3: {meaning}", returncode=exitcode, hint=hint)
    return ModelCrashedError(
        f"the model process exited unexpectedly with code {exitcode}",
        returncode=exitcode, hint="RT_DEBUG=1 shows its log",
    )
