"""What a dead model process's exit status means, in words a person can act on.

On POSIX, ``subprocess`` reports death by signal as a negative exit code (``-11`` is
SIGSEGV). On Windows a native crash shows as an NTSTATUS exit code (``0xC0000005``).
"""

from __future__ import annotations

import signal
from typing import Any

from runtime.errors import ModelCrashedError
from runtime.fsutil import human_bytes

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
}


def _memory_note(memory: Any) -> str:
    if memory is None:
        return ""
    return (f"; the load was estimated at {human_bytes(memory.total)} "
            f"with {human_bytes(memory.available)} available")


def diagnose(exitcode: int | None, *, memory: Any = None, repack: bool = False) -> ModelCrashedError:
    """A :class:`ModelCrashedError` explaining how the model process ended.

    ``memory`` (a :class:`runtime.models.memory.MemoryEstimate`) adds the estimate to an OOM message;
    ``repack`` adds "try without --repack" to a native-crash hint.
    """
    if exitcode is None:
        return ModelCrashedError("the model process stopped answering", hint="run it again; RT_DEBUG=1 shows more")
    if exitcode < 0:
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
    return ModelCrashedError(
        f"the model process exited unexpectedly with code {exitcode}",
        returncode=exitcode, hint="RT_DEBUG=1 shows its log",
    )
