"""The model process: ``python -m runtime.llm.child``, started by :mod:`runtime.llm.worker`.

It reads requests from stdin and answers on stdout (:class:`runtime.process.channel.Channel`). Before
anything else it moves its own stdout aside, so stray output of native code lands on stderr
and never inside the protocol. A reader thread turns stdin into a queue, so a generation can
notice a "cancel" (or the parent's exit, EOF) between two tokens on every platform.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
import types
from typing import IO, Any

from runtime import env
from runtime.config import GenerateOptions, LoadOptions
from runtime.process.channel import Channel, error_payload
from runtime.process.lifeline import watch_parent
from runtime.process.windows import suppress_error_dialogs

_EOF = ("close",)


def _crash_on_purpose(where: str) -> None:
    """Tests only: ``RT_TEST_CRASH=segv|kill|abort|probe|hang|hang-load|hang-probe|paging-file`` crashes (or
    hangs, or fails as Windows does without memory) this process at ``where``."""
    if os.environ.get("RT_TEST_CRASH", "") != where:
        return
    if where == "paging-file":  # how Windows refuses a mapping or an allocation when commit runs out
        raise OSError("[WinError 1455] The paging file is too small for this operation to complete")
    if where.startswith("hang"):  # busy for ever, as a slow load or a long prompt seems
        sys.stderr.write(f"rt-test: the model process hangs ({where})\n")
        sys.stderr.flush()
        while True:
            time.sleep(60)
    if where == "kill":
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
    if where == "abort":  # ggml's own abort, as a failed GGML_ASSERT inside llama.cpp ends
        from runtime.llm.llama_native import _ggml_library

        _ggml_library("ggml-base").ggml_abort(b"rt-test.c", 1, b"GGML_ASSERT(%s) failed", b"rt test")
    # a null read in C: SIGSEGV, or an access violation on Windows (where ctypes.string_at(0)
    # would not crash: ctypes turns the fault into an OSError)
    getattr(faulthandler, "_read_null")()


def _import_ctypes_layer_only() -> None:
    """Import ``llama_cpp.llama_cpp`` without the package's ``__init__``.

    That ``__init__`` also imports the high-level ``Llama`` class and with it numpy and jinja2:
    13 MB of anonymous memory and 0.1 s that this process never uses. Only done here, in a
    process that runs nothing but rt's engine.
    """
    if "llama_cpp" in sys.modules:
        return
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return  # let the normal import report it
    package = types.ModuleType("llama_cpp")
    package.__path__ = list(spec.submodule_search_locations)
    # the package's own spec: find_spec("llama_cpp") (runtime.ggml_library finds ggml's libraries
    # beside it) raises ValueError on a module in sys.modules whose __spec__ is None
    package.__spec__ = spec
    sys.modules["llama_cpp"] = package


def _take_stdio() -> tuple[IO[bytes], IO[bytes]]:
    requests = sys.stdin.buffer
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return requests, answers


def _reader(channel: Channel, inbox: queue.Queue[tuple[Any, ...]]) -> None:
    try:
        while True:
            inbox.put(channel.recv())
    except (EOFError, OSError):
        inbox.put(_EOF)  # the parent closed the pipe or exited


class _Server:
    def __init__(self, channel: Channel, inbox: queue.Queue[tuple[Any, ...]], engine: Any) -> None:
        self.channel, self.inbox, self.engine = channel, inbox, engine

    def serve(self) -> None:
        while True:
            op, *args = self.inbox.get()
            if op == "close":
                return
            try:
                self.handle(op, args)
            except Exception as exc:  # noqa: BLE001 - reported to the parent, never lost
                if env.debug():
                    traceback.print_exc()
                self.channel.send(("error", error_payload(exc)))

    def handle(self, op: str, args: list[Any]) -> None:
        if op == "stream":
            _crash_on_purpose("segv")
            _crash_on_purpose("kill")
            _crash_on_purpose("abort")
            _crash_on_purpose("hang")
            self.stream(*args)
        elif op == "tokenize":
            self.channel.send(("ok", self.engine.tokenize(args[0], add_special=args[1])))
        elif op == "detokenize":
            self.channel.send(("ok", self.engine.detokenize(args[0])))
        elif op == "yes_no":
            self.channel.send(("ok", self.engine.yes_no(*args)))
        elif op == "clear_cache":
            self.engine.clear_cache()
            self.channel.send(("ok", None))
        # "cancel" for a stream that already ended: nothing to do

    def stream(self, prompt: str, options: GenerateOptions) -> None:
        generator = self.engine.stream(prompt, options)  # raises (ContextOverflowError) before "started"
        self.channel.send(("started", None))
        while True:
            try:
                piece = next(generator)
            except StopIteration as stop:
                self.channel.send(("done", stop.value))
                return
            self.channel.send(("piece", piece))
            if not self.inbox.empty():  # only "cancel" (or EOF) can come mid-stream
                if self.inbox.get() == _EOF:
                    self.inbox.put(_EOF)
                generator.close()
                self.channel.send(("done", None))
                return


def _probe(path: str, options: LoadOptions) -> None:
    """Load (with --repack) and decode once; a crash here is what the parent looks for."""
    from runtime.llm.llama_engine import LlamaEngine

    _crash_on_purpose("probe")
    _crash_on_purpose("hang-probe")
    # a prompt long enough for the batched (GEMM) kernels, then single tokens (GEMV)
    with LlamaEngine(path, options) as engine:
        for _ in engine.stream("Hello, world. " * 16, GenerateOptions(max_tokens=4)):
            pass


def main() -> None:
    """Serve one model until the parent says "close" or goes away."""
    watch_parent()
    suppress_error_dialogs()
    requests, answers = _take_stdio()
    channel = Channel(requests, answers)
    op, path, options = channel.recv()
    if op != "probe" or env.debug():
        faulthandler.enable()  # a native crash also prints the Python stack on stderr
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if env.debug():
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    _import_ctypes_layer_only()
    if op == "probe":
        _probe(path, options)
        return
    from runtime.llm.llama_engine import LlamaEngine

    _crash_on_purpose("hang-load")
    try:
        _crash_on_purpose("paging-file")
        engine = LlamaEngine(path, options)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, never lost
        channel.send(("error", error_payload(exc)))
        return
    channel.send(("ok", {"pid": os.getpid(), "n_ctx": engine.n_ctx, "n_ctx_train": engine.n_ctx_train,
                         "special_tokens": engine.special_tokens()}))
    inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
    threading.Thread(target=_reader, args=(channel, inbox), daemon=True).start()
    try:
        _Server(channel, inbox, engine).serve()
    finally:
        engine.close()
        sys.stderr.flush()
        # The reader thread may sit in a blocking read of stdin; a normal interpreter shutdown
        # would then abort on the stdin lock ("could not acquire lock ... daemon threads").
        os._exit(0)


if __name__ == "__main__":
    main()
