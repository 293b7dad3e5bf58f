"""Remote backends against real servers: llama-cpp-python's own OpenAI-compatible server
(`python -m llama_cpp.server`) and `rt serve` itself. Retrieval stays in rt."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from runtime.config import GenerateOptions, RemoteOptions
from runtime.errors import IndexMismatchError, RemoteBackendError
from runtime.llm.remote import RemoteModel
from runtime.llm.types import Prompt
from tests.serve.conftest import Server, free_port
from tests.serve.test_server_behaviour import KEY

SHORT = GenerateOptions(max_tokens=8)


def test_generation_on_llama_cpp_python_server_counts_with_its_tokenizer(llama_cpp_server: Server) -> None:
    with RemoteModel(llama_cpp_server.url) as model:
        assert model.model_id.endswith(".gguf")
        assert "/extras/tokenize" in model.token_counting
        assert model.n_ctx == 2048 and "assumed" in model.n_ctx_source
        prompt = Prompt([{"role": "user", "content": "What is the capital of France?"}])
        assert model.count_tokens("hello world") == 2  # SmolLM2's own tokenizer, not the estimate
        stream = model.stream(prompt, SHORT)
        text = "".join(stream)
        assert text and stream.completion is not None
        assert stream.completion.text == text and 0 < stream.completion.completion_tokens <= 8


def test_rag_with_generation_on_llama_cpp_python_server(llama_cpp_server: Server, corpus_index: Path) -> None:
    from runtime.index import Index
    from runtime.rag.rag import RAG

    with RAG(RemoteModel(llama_cpp_server.url), Index.open(corpus_index)) as rag:  # type: ignore[arg-type]
        answer = rag.ask("When is the boiler's next service due?", options=GenerateOptions(max_tokens=24))
    assert answer.covered and answer.sources[0].path.endswith("boiler.md")
    assert answer.usage.completion_tokens > 0 and len(answer.answer) > len("According to [")
    # the server starts a new reply instead of continuing rt's answer prefix; asked to begin
    # with it, a reply that repeats it has it taken off, so it is shown once
    assert not answer.answer.removeprefix("According to [").lstrip().startswith("According to")


def test_generation_on_rt_serve_uses_its_tokenizer_and_context(rt_server: Server) -> None:
    with RemoteModel(rt_server.root) as model:
        assert model.model_id == "SmolLM2-135M-Instruct.Q4_1"
        assert model.n_ctx == 2048 and "/tokenize" in model.token_counting
        text = "".join(model.stream(Prompt([{"role": "user", "content": "Say hi."}]), SHORT))
        assert text


def test_an_unknown_model_name_lists_the_ones_the_server_has(llama_cpp_server: Server) -> None:
    with pytest.raises(RemoteBackendError) as error:
        RemoteModel(llama_cpp_server.url, "mistral-7b")
    message = str(error.value)
    assert llama_cpp_server.url in message and "has no model 'mistral-7b'" in message and ".gguf" in message


def test_a_refused_connection_is_one_line_with_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(RemoteBackendError) as error:
        RemoteModel(url, options=RemoteOptions(retries=1))
    assert str(error.value).startswith(f"cannot connect to {url} (connection refused)")
    assert "\n" not in str(error.value)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    for sock in accepted:
        sock.close()
    listener.close()


def test_a_server_that_does_not_answer_times_out_with_the_url(silent_server: str) -> None:
    with pytest.raises(RemoteBackendError) as error:
        RemoteModel(silent_server, options=RemoteOptions(read_timeout=1, retries=0))
    assert f"{silent_server} did not answer within 1 s" in str(error.value)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from tests.serve.conftest import start_rt_serve

    server = start_rt_serve(tmp_path_factory.mktemp("keyed-remote"), "--api-key", KEY)
    yield server
    server.stop()


def test_a_wrong_api_key_is_a_401_error_that_says_what_to_check(keyed: Server) -> None:
    with pytest.raises(RemoteBackendError) as error:
        RemoteModel(keyed.url, api_key="wrong")
    assert error.value.status == 401
    assert f"{keyed.url} refused the request: HTTP 401" in str(error.value)
    assert "RT_LLM_API_KEY" in str(error.value)
    with RemoteModel(keyed.url, api_key=KEY) as model:
        assert model.model_id == "SmolLM2-135M-Instruct.Q4_1"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL: Windows has no signal that kills the model process")
def test_a_5xx_from_the_server_is_an_error_with_its_message(keyed: Server) -> None:
    import os
    import signal

    if sys.platform == "win32":  # skipped there by its marker; this tells mypy --platform win32 too
        pytest.skip("POSIX only")

    model = RemoteModel(keyed.url, api_key=KEY, options=RemoteOptions(retries=0))
    os.kill(keyed.health()["model_pid"], signal.SIGKILL)  # the server answers 500 with its diagnosis
    with pytest.raises(RemoteBackendError) as error:
        model.count_tokens("Hi")  # POST /tokenize
    assert error.value.status == 500
    assert f"{keyed.url} failed: HTTP 500" in str(error.value) and "SIGKILL" in str(error.value)
    assert model.count_tokens("Hi") == 1  # loaded again
    with pytest.raises(RemoteBackendError, match="failed mid-answer: the model process died"):  # streamed: 200 sent
        os.kill(keyed.health()["model_pid"], signal.SIGKILL)
        "".join(model.stream(Prompt([{"role": "user", "content": "Hi"}]), SHORT))
    model.close()


def test_rt_serve_embeddings_build_an_index_the_local_model_can_search(rt_server: Server, corpus_index: Path,
                                                                       tmp_path: Path) -> None:
    from runtime.index import Index
    from runtime.index.embedders.remote import RemoteEmbedder

    remote = RemoteEmbedder(rt_server.url)
    assert remote.name == "all-MiniLM-L6-v2" and remote.dimension == 384
    with Index.open(corpus_index) as local:
        mine = local.embedder.embed(["the boiler service"])
    np.testing.assert_allclose(remote.embed(["the boiler service"]), mine, atol=1e-4)
    with Index.open(corpus_index, embedder=remote) as index:  # the same model: accepted
        assert index.search("boiler service", k=1)[0].path.endswith("boiler.md")

    other = RemoteEmbedder(rt_server.url, "all-MiniLM-L6-v2")
    other.name = "nomic-embed-text"  # what another server's model would be called
    with pytest.raises(IndexMismatchError, match="built with embedding model all-MiniLM-L6-v2"):
        Index.open(corpus_index, embedder=other)


@pytest.mark.slow  # a second server
def test_rt_serve_in_front_of_llama_cpp_python_server_keeps_retrieval_in_rt(
        llama_cpp_server: Server, corpus_index: Path, tmp_path: Path) -> None:
    import openai

    from tests.serve.conftest import start_rt_serve

    server = start_rt_serve(tmp_path, "--llm-url", llama_cpp_server.url, "--index", str(corpus_index))
    try:
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
        [model] = [m.id for m in client.models.list().data if m.id.endswith(".gguf")]
        plain = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say hi."}],
                                               max_tokens=6)
        assert plain.choices[0].message.content
        answer = client.chat.completions.create(
            model=model, max_tokens=16, extra_body={"rag": {"k": 2}},
            messages=[{"role": "user", "content": "When was the boiler serviced?"}])
        assert answer.model_extra is not None
        assert answer.model_extra["sources"][0]["path"].endswith("boiler.md")
        assert answer.model_extra["coverage"]["covered"] is True
        assert server.health()["model_pid"] is None  # no local model process
    finally:
        server.stop()
