"""`rt serve` under bad requests, auth, a full queue, disconnects, a crashed model process and
SIGTERM; all against the real server subprocess."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from click.testing import CliRunner

from tests.serve.conftest import Server, start_rt_serve

KEY = "s3cret-key"
LONG = {"messages": [{"role": "user", "content": "Write a very long story about a dragon, in many chapters."}],
        "max_tokens": 1500, "stream": True}
CHAT = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4}


@pytest.mark.parametrize("body, status, says", [
    (b"not json", 400, "not JSON"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (json.dumps(CHAT | {"max_tokens": 0}).encode(), 400, "max_tokens: Input should be greater than or equal to 1"),
    (json.dumps(CHAT | {"temperature": "hot"}).encode(), 400, "temperature: Input should be a valid number"),
    (json.dumps(CHAT | {"max_tokens": 5000}).encode(), 400, "context window holds 2048"),
    (json.dumps(CHAT | {"n": 2}).encode(), 400, "n: Input should be less than or equal to 1"),
    (json.dumps(CHAT | {"stop": ["a"] * 9}).encode(), 400, "at most 8 stop strings"),
    (json.dumps({"messages": [{"role": "user", "content": 7}]}).encode(), 400, "messages.0.content"),
    (json.dumps({"messages": []}).encode(), 400, "messages: List should have at least 1 item"),
    (json.dumps(CHAT | {"rag": {"k": 0}}).encode(), 400, "rag.k: Input should be greater than or equal to 1"),
    (json.dumps(CHAT | {"rag": {"index": "elsewhere"}}).encode(), 404, "index 'elsewhere' is not served here"),
    (json.dumps(CHAT | {"model": "gpt-4"}).encode(), 404, "model 'gpt-4' is not served here"),
    (b'{"messages": "' + b"x" * (2 << 20) + b'"}', 400, "this server accepts at most 1048576"),
])
def test_bad_chat_requests_are_answered_with_one_clear_line(rt_server: Server, body: bytes, status: int,
                                                            says: str) -> None:
    response = httpx.post(rt_server.url + "/chat/completions", content=body,
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == status
    message = response.json()["error"]["message"]
    assert says in message and "\n" not in message


def test_bad_embedding_input_is_refused(rt_server: Server) -> None:
    response = httpx.post(rt_server.url + "/embeddings", json={"input": []}, timeout=30)
    assert response.status_code == 400 and "input must hold 1 to 256 texts" in response.json()["error"]["message"]


def _wait_for(server: Server, condition, seconds: float = 20.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        health = server.health()
        if condition(health) or time.monotonic() > deadline:
            return health
        time.sleep(0.05)


def _idle_cpu(pid: int) -> bool:
    """The process used under 10% of a core over a second (a generating one uses far more)."""
    return psutil.Process(pid).cpu_percent(interval=1.0) < 10


def test_a_client_that_disconnects_stops_its_generation(rt_server: Server) -> None:
    before = rt_server.health()
    with httpx.stream("POST", rt_server.url + "/chat/completions", json=LONG, timeout=60) as response:
        pieces = [line for line, _ in zip(response.iter_lines(), range(6))]
    assert any(p.startswith("data:") for p in pieces)
    stopped_at = time.monotonic()
    after = _wait_for(rt_server, lambda h: h["generations"]["cancelled"] > before["generations"]["cancelled"]
                      and h["queue"]["running"] == 0)
    assert after["generations"]["cancelled"] == before["generations"]["cancelled"] + 1
    assert after["queue"]["running"] == 0
    assert time.monotonic() - stopped_at < 20  # 1500 tokens would take far longer on this CPU
    assert after["model_pid"] == before["model_pid"]  # stopped, not killed
    assert _idle_cpu(after["model_pid"])  # the model process is no longer generating
    assert httpx.post(rt_server.url + "/chat/completions", json=CHAT, timeout=60).status_code == 200


def test_a_client_that_disconnects_from_a_rag_answer_stops_its_generation(any_rt_server: Server) -> None:
    rt_server = any_rt_server  # the answer searches the index first, in each store
    before = rt_server.health()
    body = LONG | {"rag": {"answer_anyway": True}}  # not covered: the model's own (long) story
    with httpx.stream("POST", rt_server.url + "/chat/completions", json=body, timeout=60) as response:
        pieces = [line for line, _ in zip(response.iter_lines(), range(6))]
    assert any(p.startswith("data:") for p in pieces)
    after = _wait_for(rt_server, lambda h: h["generations"]["cancelled"] > before["generations"]["cancelled"]
                      and h["queue"]["running"] == 0)
    assert after["generations"]["cancelled"] == before["generations"]["cancelled"] + 1
    assert after["queue"]["running"] == 0 and after["model_pid"] == before["model_pid"]
    assert _idle_cpu(after["model_pid"])
    quick = httpx.post(rt_server.url + "/chat/completions", json=CHAT, timeout=60)
    assert quick.status_code == 200 and quick.json()["usage"]["completion_tokens"] <= 4


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second `rt serve`: with an API key, no index, and no room to wait in its queue."""
    server = start_rt_serve(tmp_path_factory.mktemp("keyed"), "--api-key", KEY, "--max-queue", "0")
    yield server
    server.stop()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_api_key_is_required_as_a_bearer_token(keyed_server: Server) -> None:
    assert httpx.get(keyed_server.url + "/models", timeout=10).status_code == 401
    wrong = httpx.post(keyed_server.url + "/chat/completions", json=CHAT, headers=_auth("nope"), timeout=10)
    assert wrong.status_code == 401 and "API key" in wrong.json()["error"]["message"]
    assert httpx.get(keyed_server.url + "/models", headers=_auth(KEY), timeout=10).status_code == 200
    assert httpx.get(keyed_server.root + "/health", timeout=10).status_code == 200


def test_a_full_queue_answers_429_with_retry_after(keyed_server: Server) -> None:
    started = threading.Event()

    def long_stream() -> None:
        with httpx.stream("POST", keyed_server.url + "/chat/completions", json=LONG, headers=_auth(KEY),
                          timeout=60) as response:
            for _ in response.iter_lines():
                started.set()
                if stop.is_set():
                    return

    stop = threading.Event()
    thread = threading.Thread(target=long_stream)
    thread.start()
    try:
        assert started.wait(60)
        refused = httpx.post(keyed_server.url + "/chat/completions", json=CHAT, headers=_auth(KEY), timeout=10)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "busy" in refused.json()["error"]["message"]
    finally:
        stop.set()
        thread.join(60)
    _wait_for(keyed_server, lambda h: h["queue"]["running"] == 0)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_crashed_model_process_is_a_500_with_the_diagnosis_then_is_loaded_again(keyed_server: Server) -> None:
    if sys.platform == "win32":  # skipped there by its marker; this tells mypy --platform win32 too
        pytest.skip("POSIX only")
    before = keyed_server.health()
    os.kill(before["model_pid"], signal.SIGKILL)
    crashed = httpx.post(keyed_server.url + "/chat/completions", json=CHAT, headers=_auth(KEY), timeout=60)
    assert crashed.status_code == 500
    error = crashed.json()["error"]
    assert error["code"] == "model_crashed" and "SIGKILL" in error["message"]
    again = httpx.post(keyed_server.url + "/chat/completions", json=CHAT, headers=_auth(KEY), timeout=120)
    assert again.status_code == 200
    after = keyed_server.health()
    assert after["crashes"] == before["crashes"] + 1 and after["loads"] == before["loads"] + 1
    assert after["model_pid"] != before["model_pid"]


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no SIGTERM to deliver: send_signal(SIGTERM) is "
                    "TerminateProcess, which no handler sees (Ctrl-C is tested by w-proc's reader thread)")
def test_sigterm_shuts_down_gracefully_and_ends_the_model_process(keyed_server: Server) -> None:
    child = keyed_server.health()["model_pid"]
    keyed_server.process.send_signal(signal.SIGTERM)
    assert keyed_server.process.wait(timeout=30) == 0
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_a_non_loopback_host_without_a_key_is_warned_about(tmp_path: Path) -> None:
    from runtime.cli import cli

    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--model", str(tmp_path / "missing.gguf")])
    assert "without --api-key" in result.output
    assert result.exit_code != 0
