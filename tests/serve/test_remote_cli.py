"""`rt ask` and `rt chat` with --llm-url / --embed-url against real servers: retrieval stays in rt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli
from tests.serve.conftest import Server, free_port
from tests.slow import slow_unless


def _run(*args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


@pytest.mark.parametrize("store", slow_unless(["folder", "postgresql"], "folder"), indirect=True)
def test_rt_ask_generates_on_llama_cpp_python_server_with_rt_sources(llama_cpp_server: Server,
                                                                    any_corpus_index: str) -> None:
    result = _run("ask", "--llm-url", llama_cpp_server.url, "--index", any_corpus_index, "--max-tokens", "16",
                  "--json", "When was the boiler serviced?")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["sources"][0]["path"].endswith("boiler.md")
    assert data["model"].startswith("SmolLM2") and data["usage"]["completion_tokens"] > 0


def test_rt_ask_no_rag_on_a_remote_server(rt_server: Server) -> None:
    result = _run("ask", "--no-rag", "--llm-url", rt_server.url, "--max-tokens", "6", "Say hello.")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip()


@pytest.mark.parametrize("store", slow_unless(["folder", "postgresql"], "folder"), indirect=True)
def test_rt_chat_with_generation_and_query_embedding_both_remote(rt_server: Server, any_corpus_index: str) -> None:
    result = _run("chat", "--llm-url", rt_server.url, "--embed-url", rt_server.url, "--index", any_corpus_index,
                  "--max-tokens", "12", "--json", stdin="When does the lease renew?\n")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["sources"][0]["path"].endswith("lease.md")


def test_an_unreachable_llm_url_is_one_line_with_the_url(corpus_index: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = _run("ask", "--llm-url", url, "--index", str(corpus_index), "anything")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"rt: error: cannot connect to {url} (connection refused)")
    assert "--llm-url" in lines[-1]


def test_rt_search_embeds_the_query_on_a_remote_server(rt_server: Server, any_corpus_index: str) -> None:
    local = _run("search", "--index", any_corpus_index, "--json", "-k", "3", "When does the lease renew?")
    remote = _run("search", "--embed-url", rt_server.url, "--index", any_corpus_index, "--json", "-k", "3",
                  "When does the lease renew?")
    assert remote.exit_code == 0, remote.output
    hits = json.loads(remote.stdout)
    assert hits[0]["path"].endswith("lease.md")
    assert [h["path"] for h in hits] == [h["path"] for h in json.loads(local.stdout)]


def test_rt_search_with_an_unreachable_embed_url_is_one_line(corpus_index: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = _run("search", "--embed-url", url, "--index", str(corpus_index), "lease")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"rt: error: cannot connect to {url}")


def test_rt_index_embeds_on_a_remote_server_and_the_index_remembers_it(rt_server: Server, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "boiler.md").write_text("The boiler was serviced on 3 March by Ferris Heating.\n", encoding="utf-8")
    (docs / "lease.md").write_text("The lease renews every April for twelve months.\n", encoding="utf-8")
    folder = tmp_path / "remote-index"
    built = _run("index", str(docs), "--index", str(folder), "--embed-url", rt_server.url, "--no-progress", "--json")
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout.strip().splitlines()[-1])["chunks"] >= 2
    found = _run("search", "--embed-url", rt_server.url, "--index", str(folder), "--json",
                 "When is the boiler service?")
    assert json.loads(found.stdout)[0]["path"].endswith("boiler.md")
