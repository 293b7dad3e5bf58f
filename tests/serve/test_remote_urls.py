"""Hostile or unusual server addresses and answers (issue 21 §4, §5), against real HTTP servers
on 127.0.0.1: credentials in ``--llm-url`` never reach a message, a query string stays a query,
and an embeddings server answering NaN, millions of dimensions or an endless body is refused
with one line."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from runtime.config import RemoteOptions
from runtime.errors import RemoteBackendError
from runtime.index.embedders.remote import RemoteEmbedder
from runtime.llm.remote import RemoteModel
from tests.serve.conftest import free_port

SECRET = "S3CRET"
Answer = Callable[[str, dict[str, Any]], tuple[int, bytes]]


class Recorder:
    """A tiny HTTP server that records each request line and Authorization header, and answers
    with ``answer(path, body)``."""

    def __init__(self, answer: Answer) -> None:
        self.requests: list[tuple[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                recorder.requests.append((self.requestline, self.headers.get("Authorization", "")))
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                status, data = answer(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:  # the client stopped reading a body it refused
                    pass

            do_GET = do_POST = _reply

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _models(path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    if path.startswith("/v1/models"):
        return 200, json.dumps({"data": [{"id": "tiny"}]}).encode()
    return 404, b'{"error": "no such route"}'


@pytest.fixture
def recorder() -> Iterator[Callable[[Answer], Recorder]]:
    started: list[Recorder] = []

    def start(answer: Answer) -> Recorder:
        started.append(Recorder(answer))
        return started[-1]

    yield start
    for server in started:
        server.close()


def test_a_password_in_the_url_is_not_in_the_connection_error() -> None:
    url = f"http://alice:{SECRET}@127.0.0.1:{free_port()}/v1"
    with pytest.raises(RemoteBackendError) as error:
        RemoteModel(url, options=RemoteOptions(retries=0))
    shown = f"{error.value} {error.value.hint} {error.value.url} {error.value!r}"
    assert SECRET not in shown and "alice" not in shown
    assert str(error.value).startswith("cannot connect to http://127.0.0.1:")
    assert "\n" not in str(error.value)


def test_a_password_in_the_url_goes_as_basic_auth_and_the_query_stays_a_query(recorder: Callable[[Answer], Recorder]
                                                                             ) -> None:
    server = recorder(_models)
    with RemoteModel(f"http://alice:{SECRET}@127.0.0.1:{server.port}/v1?key=abc&x=1",
                     options=RemoteOptions(retries=0)) as model:
        assert model.model_id == "tiny"
        assert SECRET not in model.url and "key=abc" not in model.url
        assert model.url == f"http://127.0.0.1:{server.port}/v1"
    line, auth = server.requests[0]
    assert line == "GET /v1/models?key=abc&x=1 HTTP/1.1"  # before: /v1?key=abc&x=1/v1/models
    assert auth == "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    # the tokenizer probes outside /v1 keep the query too
    assert any(line.startswith("POST /tokenize?key=abc&x=1 ") for line, _ in server.requests)


def test_a_path_prefix_before_v1_is_kept(recorder: Callable[[Answer], Recorder]) -> None:
    def answer(path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        return _models(path.removeprefix("/proxy"), body)

    server = recorder(answer)
    with RemoteModel(f"http://127.0.0.1:{server.port}/proxy/v1/", options=RemoteOptions(retries=0)) as model:
        assert model.model_id == "tiny"
    assert server.requests[0][0] == "GET /proxy/v1/models HTTP/1.1"


def test_an_error_from_a_url_with_a_password_does_not_show_it(recorder: Callable[[Answer], Recorder]) -> None:
    server = recorder(lambda path, body: (404, b'{"error": "nothing here"}'))
    with pytest.raises(RemoteBackendError) as error:
        RemoteModel(f"http://bob:{SECRET}@127.0.0.1:{server.port}/v1?token={SECRET}", options=RemoteOptions(retries=0))
    assert SECRET not in f"{error.value} {error.value.hint} {error.value.url}"
    assert "nothing here" in str(error.value)


def _embeddings(vector: Callable[[int], Any]) -> Answer:
    def answer(path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if not path.startswith("/v1/embeddings"):
            return 404, b"{}"
        data = [{"index": i, "embedding": vector(i)} for i, _ in enumerate(body["input"])]
        return 200, json.dumps({"model": "tiny", "data": data}).encode()

    return answer


def test_an_embeddings_server_answering_nan_is_refused_in_one_line(recorder: Callable[[Answer], Recorder]) -> None:
    server = recorder(_embeddings(lambda i: [float("nan"), 1.0, 0.5]))  # json.dumps writes NaN
    with pytest.raises(RemoteBackendError) as error:
        RemoteEmbedder(f"http://127.0.0.1:{server.port}/v1", options=RemoteOptions(retries=0))
    assert "NaN or infinite" in str(error.value) and "\n" not in str(error.value)


def test_an_embeddings_server_answering_5_million_dimensions_is_refused_unread(
        recorder: Callable[[Answer], Recorder]) -> None:
    server = recorder(_embeddings(lambda i: [0] * 5_000_000))
    with pytest.raises(RemoteBackendError) as error:
        RemoteEmbedder(f"http://127.0.0.1:{server.port}/v1", options=RemoteOptions(retries=0))
    message = str(error.value)
    assert "refused before reading it" in message and "\n" not in message


def test_an_embeddings_server_changing_dimension_or_answering_too_wide_is_refused(
        recorder: Callable[[Answer], Recorder]) -> None:
    calls: list[int] = []

    def vector(i: int) -> list[float]:
        calls.append(i)
        return [1.0] * (8 if len(calls) == 1 else 9)

    server = recorder(_embeddings(vector))
    embedder = RemoteEmbedder(f"http://127.0.0.1:{server.port}/v1", options=RemoteOptions(retries=0))
    assert embedder.dimension == 8
    with pytest.raises(RemoteBackendError, match="9-dimension vectors where it gave 8"):
        embedder.embed(["a"])
    embedder.close()
    wide = recorder(_embeddings(lambda i: [1] * 20_000))  # small as JSON, yet past MAX_DIMENSION
    with pytest.raises(RemoteBackendError, match="over 16,384 dimensions"):
        RemoteEmbedder(f"http://127.0.0.1:{wide.port}/v1", options=RemoteOptions(retries=0))


def test_the_endpoints_repr_shows_no_password_query_or_key() -> None:
    from runtime.rag.endpoints import RemoteEndpoints

    endpoints = RemoteEndpoints(llm_url=f"http://alice:{SECRET}@h:1/v1?key={SECRET}", embed_url="http://h:2/v1",
                                api_key=SECRET)
    shown = repr(endpoints)
    assert SECRET not in shown and "http://***@h:1/v1" in shown and "api_key=***" in shown
