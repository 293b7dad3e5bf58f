"""Quantize a GGUF with llama.cpp's own quantizer, in a child process.

``llama_model_quantize`` calls ``abort()`` on some errors (an unsupported tensor type, a
failed write), which would take the whole rt process down without a word. It runs in a child
Python process (a fresh interpreter, like multiprocessing's ``spawn``: Windows has no fork),
and the parent turns the child's death into a ConvertError that says what happened. We start
``python -m convert.quantize`` rather than a multiprocessing target because ``spawn``
re-imports the caller's main script, which breaks for scripts without a ``__main__`` guard
and for code fed on stdin. The child also caps llama.cpp's row buffers so that
quantizing a 7B model stays well under a gigabyte of working memory.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO

from runtime.diskfull import disk_full_error
from runtime.env import debug
from runtime.errors import ConvertError
from runtime.process.crash import log_detail
from runtime.process.launch import child_environment, python_command
from runtime.process.lifeline import watch_parent
from runtime.process.pipe_reader import PipeReader
from runtime.process.windows import creation_flags, suppress_error_dialogs

logger = logging.getLogger(__name__)

# llama_ftype values (llama.h) and the average bits per weight of each, for size estimates.
QUANTIZED_TYPES: Mapping[str, int] = {
    "Q8_0": 7, "Q6_K": 18, "Q5_K_M": 17, "Q5_K_S": 16, "Q4_K_M": 15, "Q4_K_S": 14,
    "Q4_0": 2, "Q3_K_M": 12, "Q2_K": 10,
}
BITS_PER_WEIGHT: Mapping[str, float] = {
    "Q8_0": 8.5, "Q6_K": 6.56, "Q5_K_M": 5.7, "Q5_K_S": 5.55, "Q4_K_M": 4.9, "Q4_K_S": 4.6,
    "Q4_0": 4.6, "Q3_K_M": 3.9, "Q2_K": 3.35,
}
# Rows of one tensor llama.cpp keeps in memory at once (its default is 8 GiB).
MAX_BUFFER_BYTES = 256 * 1024 * 1024
_GGML_LOG_WARN, _GGML_LOG_ERROR = 3, 4


def _child(src: str, dst: str, ftype: int, threads: int) -> int:
    """Child process body: quantize ``src`` into ``dst``; progress and errors go to stdout."""
    watch_parent()  # a killed `rt convert` must not leave a quantizer running for minutes
    suppress_error_dialogs()  # an abort() must end the process, not wait for a click
    from llama_cpp import llama_cpp as L

    echo = debug()

    def report(*fields: object) -> None:
        sys.stdout.write(" ".join(str(f) for f in fields) + "\n")
        sys.stdout.flush()

    def on_log(level: int, text: bytes | None, _user: ctypes.c_void_p) -> None:
        piece = (text or b"").decode("utf-8", errors="replace")
        if echo:
            sys.stderr.write(piece)
        counter = piece.strip().partition("]")[0]
        if counter.startswith("[") and "/" in counter:  # "[  12/ 272] blk.1.attn_q.weight ..."
            done, total = counter[1:].split("/")
            report("progress", int(done), int(total))
        if level in (_GGML_LOG_WARN, _GGML_LOG_ERROR) and piece.strip():
            report("error", " ".join(piece.split()))

    if os.environ.get("RT_TEST_CRASH") == "hang-quantize":  # tests: a tensor that takes for ever
        report("progress", 0, 1)
        while True:
            time.sleep(60)
    callback = L.llama_log_callback(on_log)
    L.llama_log_set(callback, ctypes.c_void_p(0))
    L.llama_backend_init()
    params = L.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    params.max_buf_size = MAX_BUFFER_BYTES
    status = L.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    report("done", status)
    return 0 if status == 0 else 2


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


def quantize_gguf(
    src: Path,
    dst: Path,
    quant: str,
    *,
    threads: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Quantize the F32/F16/BF16 GGUF ``src`` into ``dst`` as ``quant`` (e.g. "Q4_K_M").

    Runs ``convert.quantize`` as ``__main__`` in a fresh interpreter started by
    :mod:`runtime.process.launch` (as a spawn would be, but without re-importing the caller's
    main script). Raises ConvertError if llama.cpp reports
    a failure or the child dies.
    """
    command = python_command("convert.quantize", str(Path(src).resolve()), str(Path(dst).resolve()),
                             str(QUANTIZED_TYPES[quant]), str(threads or os.cpu_count() or 1))
    errors: list[str] = []
    status: int | None = None
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   encoding="utf-8", errors="replace", env=_child_env(), creationflags=creation_flags())
        try:
            assert process.stdout is not None
            # read on a helper thread: a blocking pipe read would hold off Ctrl-C on Windows until
            # the quantizer's next line (a large tensor takes minutes); the finally kills the child
            for line in _lines(PipeReader(_line_reader(process.stdout), name="rt-quantize-reader")):
                kind, _, rest = line.rstrip("\n").partition(" ")
                if kind == "progress" and on_progress is not None:
                    done, total = rest.split()
                    on_progress(int(done), int(total))
                elif kind == "error":
                    errors.append(rest)
                elif kind == "done":
                    status = int(rest)
            process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr.seek(0)
        tail_text = stderr.read().decode("utf-8", errors="replace").strip().splitlines()[-200:]
    if status != 0:
        _raise_if_disk_full(Path(src), Path(dst), quant, " ".join(errors + tail_text[-3:]))
    if status is None:
        quoted = log_detail("\n".join(tail_text)) or " | ".join(tail_text[-3:])
        detail = f": {quoted}" if quoted else ""
        raise ConvertError(
            f"llama.cpp's quantizer {_describe_exit(process.returncode)} while writing {quant} "
            f"from {src.name}{detail}",
            hint="run with RT_DEBUG=1 to see llama.cpp's log; check free memory and disk",
        )
    if status != 0:
        detail = "; ".join(errors[-3:]) or "no message"
        raise ConvertError(f"llama.cpp could not quantize {src.name} to {quant}: {detail}")


# What llama.cpp's quantizer says when its std::ofstream cannot write (a full disk among others):
# "failed to quantize: basic_ios::clear: iostream error". It gives no errno.
_WRITE_FAILED = ("iostream error", "failed to write", "No space left")


def _raise_if_disk_full(src: Path, dst: Path, quant: str, detail: str) -> None:
    """Tell a full disk as one: the quantizer failed writing and ``dst``'s disk has no room left.

    "No room" is judged against the float source: the output is smaller, so a disk with that
    much free would not have filled (and a failure there is another one, reported as such).
    """
    if not any(marker in detail for marker in _WRITE_FAILED):
        return
    from runtime.fsutil import free_space

    try:
        room = free_space(dst.parent)
        expected = src.stat().st_size
    except OSError:
        return
    if room < expected:
        full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise disk_full_error(dst, f"quantizing to {quant}", full)


def _line_reader(stream: IO[str]) -> Callable[[], str]:
    def read_line() -> str:
        line = stream.readline()
        if not line:
            raise EOFError
        return line

    return read_line


def _lines(reader: PipeReader[str]) -> Iterator[str]:
    while True:
        try:
            yield reader.get()
        except EOFError:
            return


def _child_env() -> dict[str, str]:
    """rt's child environment, with stdout in UTF-8 whatever the locale.

    On Windows the default (often cp1252) cannot write a llama.cpp log line holding, say, a CJK
    folder name, and the message would be lost.
    """
    environment = {**child_environment(), "PYTHONIOENCODING": "utf-8"}
    if not debug():
        environment["GGML_NO_BACKTRACE"] = "1"  # an abort would attach gdb; its lines are not shown
    return environment


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
