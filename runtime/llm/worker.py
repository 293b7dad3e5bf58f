"""The engine in a child process, so a native crash or an OOM kill is reported, not silent.

:class:`WorkerEngine` starts ``python -m runtime.llm.child`` and proxies tokenize, detokenize,
the yes/no probe and streaming to it over its stdin/stdout (length-prefixed pickles,
:mod:`runtime.process.channel`); pieces of text come back as they are generated. When the
child dies, its stdout reaches EOF and the parent raises :class:`ModelCrashedError` saying what
the exit means (:mod:`runtime.process.crash`).

A plain subprocess rather than ``multiprocessing``: its "spawn" start method (the only one on
Windows) re-runs the caller's ``__main__`` in the child, so every script using :class:`Model`
would need an ``if __name__ == "__main__"`` guard.

``RT_TEST_CRASH`` (read only in the child) crashes it on purpose, for tests: ``segv`` (a
null-pointer read at the first generation), ``kill`` (SIGKILL itself, as the OOM killer would),
``probe`` (only the ``--repack`` probe child segfaults), ``hang`` (the model process stops
answering at the first generation, as a long prompt on a 7B model seems to), ``hang-load`` (it
never finishes loading), ``hang-probe`` (the ``--repack`` probe never finishes).

Ctrl-C: the child ignores it; the parent reads the child's stdout on a helper thread
(:class:`runtime.process.pipe_reader.PipeReader`) so its own waits end within a fraction of a
second on Windows too, and an interrupt while the child is busy kills the child at once
rather than waiting for it to finish a load or a prompt.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Generator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import IO, Any

from runtime import env
from runtime.config import GenerateOptions, LoadOptions
from runtime.errors import GenerationError, ModelCrashedError, ModelLoadError
from runtime.llm.generation import Completion
from runtime.llm.yes_no import YesNo
from runtime.models.memory import memory_error_from
from runtime.process import crash
from runtime.process.channel import Channel, encode, rebuild_error
from runtime.process.launch import child_environment, python_command
from runtime.process.pipe_reader import WAIT_SLICE_SECONDS, PipeReader
from runtime.process.windows import creation_flags

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT = 10.0
PROBE_TIMEOUT = 300.0


def _start_child(verbose: bool = False) -> tuple[subprocess.Popen[bytes], IO[bytes] | None]:
    """The model process (:mod:`runtime.llm.child`) on rt's own import path, and the file
    its stderr goes to: ``None`` (shared with ours) under ``RT_DEBUG`` or ``verbose`` (llama.cpp's
    log asked for), else a temporary file whose tail :func:`runtime.process.crash.diagnose`
    quotes, and no gdb backtrace from ggml."""
    environment = child_environment()
    log: IO[bytes] | None = None
    if not (env.debug() or verbose):
        log = tempfile.TemporaryFile()
        environment["GGML_NO_BACKTRACE"] = "1"  # ggml would attach gdb to print one on abort
    process = subprocess.Popen(python_command("runtime.llm.child"), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=log, env=environment,
                               creationflags=creation_flags())
    return process, log


def _log_tail(log: IO[bytes] | None, size: int = 16384) -> str:
    if log is None:
        return ""
    try:
        log.seek(0, os.SEEK_END)
        log.seek(max(0, log.tell() - size))
        return log.read().decode("utf-8", errors="replace")
    except (OSError, ValueError):
        return ""


class WorkerEngine:
    """The engine's interface (tokenize, detokenize, stream, yes_no, close) backed by a child process.

    ``memory`` (a :class:`runtime.models.memory.MemoryEstimate`) only feeds the diagnosis if the
    child is killed.
    """

    def __init__(self, path: str | Path, options: LoadOptions, *, memory: Any = None) -> None:
        self.path, self.options, self._memory = Path(path), options, memory
        self._process, self._log = _start_child(options.verbose)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._channel = Channel(self._process.stdout, self._process.stdin)
        self._inbox: PipeReader[tuple[str, Any]] = PipeReader(self._channel.recv, name="rt-model-reader")
        self._closed = False
        self._streaming = False
        self._started = False
        try:
            self._send(("load", str(self.path), options))
            ready = self._recv()[1]
        except BaseException:
            self.close()
            raise
        self._started = True
        self.n_ctx: int = ready["n_ctx"]
        self.n_ctx_train: int = ready["n_ctx_train"]
        # the process that holds the model: on Windows a venv's python.exe is a launcher whose
        # child runs the interpreter, so Popen's pid would name the launcher
        self.pid: int = int(ready.get("pid", self._process.pid))
        self._special_tokens: dict[str, str] = ready["special_tokens"]

    def _crashed(self) -> ModelCrashedError:
        try:
            code: int | None = _wait(self._process, CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = None
        self._closed = True
        return crash.diagnose(code, memory=self._memory, repack=bool(self.options.repack),
                              log_tail=_log_tail(self._log), started=self._started,
                              refusal=partial(memory_error_from, est=self._memory))

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self._channel.send(message)
        except OSError:  # BrokenPipeError: the child is gone
            raise self._crashed() from None
        except KeyboardInterrupt:
            self._abandon()
            raise

    def _recv(self) -> tuple[str, Any]:
        try:
            kind, value = self._inbox.get()
        except (EOFError, OSError):
            raise self._crashed() from None
        except KeyboardInterrupt:  # the child may be minutes from answering: stop it now
            self._abandon()
            raise
        if kind in ("error", "done"):
            self._streaming = False
        if kind == "error":
            raise _with_memory_numbers(rebuild_error(value), self._memory)
        return kind, value

    def _idle(self) -> None:
        """Make the child idle: stop a stream the caller left unfinished, drain its pieces."""
        if self._closed:
            raise ModelCrashedError("the model process is no longer running", hint="load the model again")
        if self._streaming:
            self._send(("cancel",))
            while self._streaming:
                self._recv()

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]:
        self._idle()
        self._send(("tokenize", text, add_special))
        return list(self._recv()[1])

    def detokenize(self, tokens: Sequence[int]) -> str:
        self._idle()
        self._send(("detokenize", list(tokens)))
        return str(self._recv()[1])

    def yes_no(self, prompt: str, probe: str) -> YesNo:
        """Like :meth:`runtime.llm.llama_engine.LlamaEngine.yes_no`, run in the child."""
        self._idle()
        self._send(("yes_no", prompt, probe))
        return self._recv()[1]  # type: ignore[no-any-return]

    def special_tokens(self) -> dict[str, str]:
        return dict(self._special_tokens)

    def clear_cache(self) -> None:
        """Like :meth:`runtime.llm.llama_engine.LlamaEngine.clear_cache`: the next prompt is decoded
        from its first token, as in a fresh model process (the test suite's shared model process
        is handed from test to test this way)."""
        self._idle()
        self._send(("clear_cache",))
        self._recv()

    def stream(self, prompt: str, options: GenerateOptions = GenerateOptions()) -> Generator[str, None, Completion]:
        """Like :meth:`runtime.llm.types.Engine.stream`, with the pieces coming from the child."""
        self._idle()
        self._send(("stream", prompt, options))
        self._recv()  # "started", or the error (ContextOverflowError) raised now
        self._streaming = True
        return self._pieces()

    def _pieces(self) -> Generator[str, None, Completion]:
        try:
            while True:
                kind, value = self._recv()
                if kind == "done":
                    return value  # type: ignore[no-any-return]
                yield value
        except KeyboardInterrupt:
            self._abandon()
            raise
        finally:
            if self._streaming and not self._closed:
                self._idle()

    def _abandon(self) -> None:
        """Ctrl-C while the child works: kill it now rather than wait for it to notice a cancel.

        The child sees "cancel" only between two tokens, and nothing during a load; inside a long
        prompt (thousands of tokens on a 7B model: a minute or more) Ctrl-C would seem ignored.
        The model has to be loaded again afterwards.
        """
        self._closed = True
        self._streaming = False
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if getattr(self, "pid", self._process.pid) != self._process.pid:
            _kill_pid(self.pid)  # the interpreter a launcher started: killing the launcher may not end it

    def close(self) -> None:
        """Ask the child to free the model and exit; kill it if it does not."""
        if not self._closed:
            self._closed = True
            try:
                if self._streaming:
                    self._channel.send(("cancel",))
                self._channel.send(("close",))
            except OSError:
                pass
        interrupted = False
        try:
            _wait(self._process, CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        except KeyboardInterrupt:  # stop waiting, but still clean up before passing it on
            interrupted = True
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._inbox.join(CLOSE_TIMEOUT)  # it holds stdout's lock until it sees the pipe's end
        for stream in (self._process.stdin, self._process.stdout, self._log):
            if stream is not None:
                try:
                    stream.close()
                except OSError:  # a request the dead child never read, flushed on close
                    pass
        if interrupted:
            raise KeyboardInterrupt


def probe_repack(path: str | Path, options: LoadOptions) -> ModelCrashedError | None:
    """Load with repacking (``use_extra_bufts``) and decode once in a throwaway child process.

    Returns ``None`` when that worked, else the diagnosis of how the child died; the caller
    then loads without repacking.
    """
    probe = replace(options, repack=True, n_ctx=min(options.n_ctx, 256), n_batch=min(options.n_batch, 256),
                    prefix_cache=False)
    process, log = _start_child(probe.verbose)
    try:
        assert process.stdin is not None
        try:
            process.stdin.write(encode(("probe", str(path), probe)))
            process.stdin.close()
        except OSError:
            pass  # it died at once: its exit code says how
        try:
            code = _wait(process, PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            return ModelCrashedError(f"the --repack test load did not finish in {PROBE_TIMEOUT:.0f} s")
        return None if code == 0 else crash.diagnose(code, repack=True, log_tail=_log_tail(log))
    finally:
        if process.poll() is None:  # timed out, or Ctrl-C
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if log is not None:
            log.close()


def _with_memory_numbers(error: Exception, memory: Any) -> Exception:
    """``error`` as :class:`InsufficientMemoryError` when it is the system refusing memory (on
    Windows "The paging file is too small", WinError 1455), else as is."""
    if not isinstance(error, (ModelLoadError, GenerationError)) and type(error) is not RuntimeError:
        return error
    return memory_error_from(str(getattr(error, "message", error)), memory) or error


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))  # SIGTERM: TerminateProcess on Windows
    except OSError:
        pass  # already gone


def _wait(process: subprocess.Popen[bytes], timeout: float) -> int:
    """``process.wait(timeout)`` in short slices: one long wait would hold off Ctrl-C on Windows."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return process.wait(timeout=min(WAIT_SLICE_SECONDS, max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise

