"""`rt serve` against hostile web pages and hostile bodies: DNS rebinding (a foreign Host),
cross-site requests (a foreign Origin, text/plain bodies, preflights), deeply nested JSON and
huge integers; and who may start it where (the bind refusal, the three ways to give a key).
All against the real server subprocess, with real HTTP requests."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from click.testing import CliRunner

from runtime.serve.guard import allowed_hosts, host_allowed, origin_allowed
from tests.serve.conftest import Server, start_rt_serve

CHAT = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4}
RAG = CHAT | {"rag": {"answer_anyway": True}}


def _refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and "\n" not in error["message"]
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("path, method", [("/v1/chat/completions", "POST"), ("/v1/models", "GET"),
                                          ("/health", "GET"), ("/tokenize", "POST")])
def test_a_rebinding_name_in_host_is_refused_before_any_work(rt_server: Server, path: str, method: str) -> None:
    before = rt_server.health()["generations"]
    response = httpx.request(method, rt_server.root + path, json=RAG,
                             headers={"Host": "evil.example", "Origin": "http://evil.example"}, timeout=30)
    _refused(response, 403, "host_not_allowed")
    assert "evil.example" in response.json()["error"]["message"]
    assert "sources" not in response.text
    assert rt_server.health()["generations"] == before


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1.evil.example", "localhost:1",
                                  "127.0.0.1:{port}.evil.example", "[evil", "[::1", "a:b:c", "",
                                  "127.0.0.1:{port}@evil.example"])
def test_host_values_that_only_look_local_are_refused(rt_server: Server, host: str) -> None:
    response = httpx.get(rt_server.url + "/models", headers={"Host": host.format(port=rt_server.port)}, timeout=30)
    _refused(response, 403, "host_not_allowed")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:{port}", "localhost", "LOCALHOST:{port}",
                                  "[::1]:{port}"])
def test_the_bound_address_names_are_served(rt_server: Server, host: str) -> None:
    response = httpx.get(rt_server.url + "/models", headers={"Host": host.format(port=rt_server.port)}, timeout=30)
    assert response.status_code == 200


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://localhost.evil.example:{port}",
                                    "file://", "http://127.0.0.1:{port}/path", "http://[evil", ""])
def test_a_cross_site_page_is_refused_even_through_the_right_host(rt_server: Server, origin: str) -> None:
    response = httpx.post(rt_server.url + "/chat/completions", json=RAG,
                          headers={"Origin": origin.format(port=rt_server.port)}, timeout=30)
    _refused(response, 403, "origin_not_allowed")


def test_a_page_of_the_server_own_origin_may_call(rt_server: Server) -> None:
    response = httpx.post(rt_server.url + "/chat/completions", json=CHAT,
                          headers={"Origin": f"http://127.0.0.1:{rt_server.port}"}, timeout=60)
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_a_blind_text_plain_post_is_refused_with_415(rt_server: Server) -> None:
    before = rt_server.health()["generations"]
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                         "application/json; charset=latin-1", "application/jsonp", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = httpx.post(rt_server.url + "/chat/completions", content=json.dumps(RAG).encode(),
                              headers=headers, timeout=30)
        _refused(response, 415, "unsupported_media_type")
    assert rt_server.health()["generations"] == before


def test_json_with_a_utf8_charset_is_served(rt_server: Server) -> None:
    response = httpx.post(rt_server.url + "/chat/completions", content=json.dumps(CHAT).encode(),
                          headers={"Content-Type": "Application/JSON; charset=UTF-8"}, timeout=60)
    assert response.status_code == 200


def test_a_foreign_preflight_is_not_approved(rt_server: Server) -> None:
    response = httpx.options(rt_server.url + "/chat/completions", timeout=30, headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization"})
    assert response.status_code == 403
    assert not any(name.startswith("access-control-") for name in response.headers)


def test_the_official_client_still_works_with_the_guard(rt_server: Server) -> None:
    client = openai.OpenAI(base_url=rt_server.url, api_key="unused", max_retries=0)
    answer = client.chat.completions.create(model="default", messages=CHAT["messages"], max_tokens=4)  # type: ignore[arg-type,call-overload]
    assert answer.choices[0].message.content is not None


@pytest.mark.parametrize("body, says", [
    (b"[" * 200_000, "nests arrays or objects too deeply"),
    (b'{"messages": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}", "nests arrays or objects too deeply"),
    (b'{"max_tokens": 1' + b"0" * 5000 + b', "messages": []}', "a number of over 4300 digits"),
])
def test_hostile_json_is_a_400_not_a_500(rt_server: Server, body: bytes, says: str) -> None:
    response = httpx.post(rt_server.url + "/chat/completions", content=body,
                          headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]["message"]
    assert rt_server.health()["status"] == "ok"


def test_allowed_hosts_name_the_bind_address_and_the_extra_names() -> None:
    allowed = allowed_hosts("127.0.0.1", 8080, ["rt.lan", "proxy.example:443"])
    assert allowed is not None
    for host in ("127.0.0.1:8080", "localhost", "[::1]:8080", "rt.lan", "rt.lan:8080", "proxy.example:443"):
        assert host_allowed(host, allowed, wildcard=False)
    for host in ("proxy.example", "192.168.1.5", "rt.lan:9", "evil.example"):
        assert not host_allowed(host, allowed, wildcard=False)
    assert host_allowed("[fe80::1]:8080", allowed_hosts("127.0.0.1", 8080, ["fe80::1"]), wildcard=False)
    assert allowed_hosts("127.0.0.1", 8080, ["*"]) is None
    assert host_allowed("evil.example", None, wildcard=False)
    # bound to every interface: an address (never a rebinding) is served, another name is not
    every = allowed_hosts("0.0.0.0", 8080)
    assert host_allowed("192.168.1.5:8080", every, wildcard=True)
    assert not host_allowed("evil.example:8080", every, wildcard=True)
    for odd in ("192.168.1.5:http", "[192.168.1.5", "[::1"):
        assert not host_allowed(odd, every, wildcard=True)
    assert origin_allowed("http://rt.lan:8080", allowed, wildcard=False)
    assert not origin_allowed("https://evil.example", allowed, wildcard=False)


def test_an_allowed_host_is_served_and_others_still_refused(tmp_path: Path) -> None:
    server = start_rt_serve(tmp_path, "--allowed-host", "rt.lan")
    try:
        assert httpx.get(server.url + "/models", headers={"Host": "rt.lan"}, timeout=30).status_code == 200
        _refused(httpx.get(server.url + "/models", headers={"Host": "evil.example"}, timeout=30), 403,
                 "host_not_allowed")
    finally:
        server.stop()


# --- who may start it where -------------------------------------------------------------
def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    from runtime.cli import cli

    result = CliRunner().invoke(cli, ["serve", *args, "--model", str(tmp_path / "missing.gguf")], env=env)
    return result.exit_code, result.output


def test_a_non_loopback_bind_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    code, output = _serve(tmp_path, "--host", "0.0.0.0")
    assert code != 0
    assert "refusing to listen on 0.0.0.0 without --api-key" in output and "--insecure" in output
    assert "missing.gguf" not in output  # refused before the model is even looked for
    assert len(output.strip().splitlines()) == 1


def test_insecure_or_a_key_lets_a_non_loopback_bind_start(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text("s3cret\r\n", encoding="utf-8")
    for args, env in [(("--insecure",), None), (("--api-key-file", str(key_file)), None),
                      ((), {"RT_API_KEY": "s3cret"})]:
        code, output = _serve(tmp_path, "--host", "0.0.0.0", *args, env=env)
        assert code != 0 and "missing.gguf" in output and "refusing" not in output, output


@pytest.mark.parametrize("content, says", [("", "must hold the key on one line, and holds nothing"),
                                           ("one\ntwo\n", "holds 2 lines"), (None, "cannot read --api-key-file")])
def test_a_bad_key_file_is_one_clear_line(tmp_path: Path, content: str | None, says: str) -> None:
    key_file = tmp_path / "key.txt"
    if content is not None:
        key_file.write_text(content, encoding="utf-8")
    code, output = _serve(tmp_path, "--api-key-file", str(key_file))
    assert code != 0 and says in output and len(output.strip().splitlines()) == 1, output


def test_the_key_file_key_is_required(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_bytes(b"\xef\xbb\xbffrom-a-file\r\n")  # as Windows' Notepad saves it: a BOM, CRLF
    server = start_rt_serve(tmp_path, "--api-key-file", str(key_file))
    try:
        assert httpx.get(server.url + "/models", timeout=30).status_code == 401
        ok = httpx.get(server.url + "/models", headers={"Authorization": "Bearer from-a-file"}, timeout=30)
        assert ok.status_code == 200
        assert "from-a-file" not in " ".join(server.process.args)  # type: ignore[arg-type]
    finally:
        server.stop()
