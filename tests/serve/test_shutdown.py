"""SIGTERM while a stream is running: the client gets an error event and a complete body, and
`rt serve` (with its model process) exits within the documented time, without a traceback."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from runtime.config import GenerateOptions, LoadOptions
from runtime.errors import ModelCrashedError
from runtime.llm.model import Model
from runtime.serve.host import ModelHost
from runtime.serve.server import GRACEFUL_SECONDS
from tests.serve.conftest import start_rt_serve

LONG = {"messages": [{"role": "user", "content": "Write a very long story about a dragon, in many chapters."}],
        "max_tokens": 1500, "stream": True}
# The documented 5 s, with room for a machine whose other jobs keep both cores busy (the exit
# itself is a few hundred milliseconds when idle; before the fix it took 41.8 s).
EXIT_SLACK = 3


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is TerminateProcess there")
def test_sigterm_mid_stream_ends_the_stream_with_an_error_event_and_exits_in_time(tmp_path: Path) -> None:
    server = start_rt_serve(tmp_path)
    try:
        child = server.health()["model_pid"]
        events: list[str] = []
        with httpx.stream("POST", server.url + "/chat/completions", json=LONG, timeout=60) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("data:"):
                    events.append(line[5:].strip())
                if len(events) >= 3:
                    break
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            # a truncated chunked body raises httpx.RemoteProtocolError here
            events += [line[5:].strip() for line in lines if line.startswith("data:")]
        code = server.process.wait(timeout=60)
        took = time.monotonic() - signalled
    finally:
        server.stop()
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "server_shutting_down" and "shutting down" in error["message"]
    assert len(events) < 1500  # the story was cut short, not waited for
    assert code == 0
    assert took < GRACEFUL_SECONDS + EXIT_SLACK
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is TerminateProcess there")
def test_sigterm_answers_a_request_still_generating_with_a_503(tmp_path: Path) -> None:
    server = start_rt_serve(tmp_path)
    answers: list[httpx.Response] = []
    try:
        asking = threading.Thread(target=lambda: answers.append(httpx.post(
            server.url + "/chat/completions", json=LONG | {"stream": False}, timeout=60)))
        asking.start()
        deadline = time.monotonic() + 60
        while server.health()["queue"]["running"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        asking.join(60)
        code = server.process.wait(timeout=60)
    finally:
        server.stop()
    assert answers and answers[0].status_code == 503, answers
    assert answers[0].json()["error"]["code"] == "server_shutting_down"
    assert code == 0
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


@pytest.mark.parametrize("signals", ["posix", "windows"])
def test_closing_the_host_ends_a_model_process_that_does_not_stop(smollm2_path: Path, signals: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A generation that does not look at ``cancel`` (as a model reading a long prompt does not)
    would hold a shutdown for as long as it runs: closing the host ends its process instead.
    Windows' signal module has no SIGKILL; there os.kill(pid, SIGTERM) is TerminateProcess."""
    if signals == "windows":
        monkeypatch.delattr(signal, "SIGKILL")
    load = LoadOptions(n_ctx=2048, threads=1)
    host = ModelHost(lambda: Model(smollm2_path, load), model_id="smollm2", load=load)  # type: ignore[arg-type, return-value]
    started = threading.Event()
    pieces: list[str] = []

    def deaf(host: ModelHost) -> int:
        model: Any = host.model
        prompt = model.chat_prompt([{"role": "user", "content": "Count from 1 to 2000, one number per line."}])
        for piece in model.stream(prompt, GenerateOptions(max_tokens=1500, threads=1)):
            pieces.append(piece)
            started.set()
        return len(pieces)

    async def close_while_generating() -> tuple[int | None, BaseException | int]:
        job = asyncio.ensure_future(host.call(deaf))
        assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 120)
        pid = host.pid
        host.close()
        try:
            return pid, await job
        except ModelCrashedError as exc:
            return pid, exc

    try:
        pid, outcome = asyncio.run(close_while_generating())
    finally:
        host.close()
    assert isinstance(outcome, ModelCrashedError), f"the generation ran to its end: {outcome} pieces"
    assert len(pieces) < 1500
    assert host.counters.crashes == 0  # ended on purpose, not a crash to report
    assert pid is not None and (not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
