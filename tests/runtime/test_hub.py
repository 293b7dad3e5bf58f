"""runtime.models.hub against a real HTTP hub on 127.0.0.1, through the real huggingface_hub client."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.errors import ChecksumError, DownloadError
from runtime.models.hub import (
    HubFile,
    checkpoint_folder,
    download_checkpoint,
    download_gguf,
    partial_path,
    pick_gguf,
    quant_of,
)
from runtime.models.registry import sha256_file
from tests.hubserver import GGUF_FILE, GGUF_REPO, HubServer


def _files(*names: str) -> list[HubFile]:
    return [HubFile(n, 10, None) for n in names]


# --- choosing the file -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Qwen2.5-7B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("qwen2.5-7b-instruct-q4_k_m.gguf", "Q4_K_M"),
        ("model.Q4_K.gguf", "Q4_K"),
        ("model-IQ4_XS.gguf", "IQ4_XS"),
        ("Mistral-7B-v0.3-bf16.gguf", "BF16"),
        ("model-Q8_0-00002-of-00003.gguf", "Q8_0"),
        ("model.gguf", None),
    ],
)
def test_quant_of_reads_the_file_name(name: str, quant: str | None) -> None:
    assert quant_of(name) == quant


def test_pick_prefers_the_name_ending_in_the_quant() -> None:
    files = _files(
        "sub/model-Q4_K_M.gguf", "model-Q4_K_M-imat.gguf", "model-Q4_K_M.gguf", "model-Q4_K_S.gguf",
        "model-IQ4_K_M.gguf", "mmproj-model-Q4_K_M.gguf", "README.md",
    )
    assert [f.path for f in pick_gguf("o/r", files, "q4_k_m")] == ["model-Q4_K_M.gguf"]


def test_missing_quant_names_the_ones_that_exist() -> None:
    files = _files("m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-F16-00001-of-00002.gguf", "m-F16-00002-of-00002.gguf")
    with pytest.raises(DownloadError) as err:
        pick_gguf("o/r", files, "Q5_K_M")
    assert "has no Q5_K_M GGUF; it has: F16, Q4_K_M, Q8_0" in str(err.value)
    assert "--quant Q4_K_M" in str(err.value)


def test_split_parts_come_in_order_and_must_be_complete() -> None:
    parts = pick_gguf("o/r", _files("m-Q8_0-00002-of-00002.gguf", "m-Q8_0-00001-of-00002.gguf"), "Q8_0")
    assert [p.path for p in parts] == ["m-Q8_0-00001-of-00002.gguf", "m-Q8_0-00002-of-00002.gguf"]
    with pytest.raises(DownloadError, match=r"incomplete: parts \[1, 3\] of 3"):
        pick_gguf("o/r", _files("m-Q8_0-00001-of-00003.gguf", "m-Q8_0-00003-of-00003.gguf"), "Q8_0")


def test_repo_without_gguf_points_to_from() -> None:
    with pytest.raises(DownloadError, match="has no .gguf files.*--from"):
        pick_gguf("o/r", _files("model.safetensors", "config.json"), "Q4_K_M")


# --- downloading -------------------------------------------------------------------------------
def test_download_verifies_and_lands_under_the_final_name(
    gguf_repo: HubServer,
    smollm2_path: Path,
    tmp_path: Path,
) -> None:
    got = download_gguf(GGUF_REPO, "q4_k_m", tmp_path / "out")
    assert got.path == tmp_path / "out" / GGUF_FILE
    assert got.sha256 == sha256_file(smollm2_path) == sha256_file(got.path)
    assert got.quantization == "Q4_K_M" and got.files == (GGUF_FILE,)
    assert got.source.startswith(f"hf:{GGUF_REPO}/{GGUF_FILE}@")
    assert [p.name for p in (tmp_path / "out").iterdir()] == [GGUF_FILE]  # no partial left
    assert not any("xet" in k for r in gguf_repo.requests for k in r.headers)


def test_dropped_connection_is_resumed_with_a_range_request(
    gguf_repo: HubServer,
    smollm2_path: Path,
    tmp_path: Path,
) -> None:
    gguf_repo.drop_after[GGUF_FILE] = 25_000_000  # of 98 MB
    got = download_gguf(GGUF_REPO, "Q4_K_M", tmp_path)
    gets = gguf_repo.gets_of(GGUF_FILE)
    assert len(gets) == 2 and "range" not in gets[0].headers
    start = int(gets[1].headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 25_000_000  # huggingface_hub resumes from the last whole chunk it wrote
    assert sha256_file(got.path) == sha256_file(smollm2_path)


@pytest.mark.slow
def test_interrupted_run_is_resumed_by_the_next_run(gguf_repo: HubServer, smollm2_path: Path, tmp_path: Path) -> None:
    gguf_repo.drop_after[GGUF_FILE] = 25_000_000
    gguf_repo.fail_after_drop[GGUF_FILE] = 503  # the hub goes away after the cut
    with pytest.raises(DownloadError, match="HTTP 503"):
        download_gguf(GGUF_REPO, "Q4_K_M", tmp_path)
    assert not (tmp_path / GGUF_FILE).exists()
    (partial,) = tmp_path.glob(".*.part")
    kept = partial.stat().st_size
    assert 0 < kept <= 25_000_000

    gguf_repo.fail_after_drop.clear()
    gguf_repo.requests.clear()
    got = download_gguf(GGUF_REPO, "Q4_K_M", tmp_path)
    (resumed,) = gguf_repo.gets_of(GGUF_FILE)
    assert resumed.headers["range"] == f"bytes={kept}-"
    assert sha256_file(got.path) == sha256_file(smollm2_path)
    assert not partial.exists()


def test_checksum_mismatch_deletes_the_download(gguf_repo: HubServer, tmp_path: Path) -> None:
    gguf_repo.repos[GGUF_REPO].reported_sha256[GGUF_FILE] = "0" * 64
    with pytest.raises(ChecksumError, match=r"failed verification.*sha256 0000.*deleted"):
        download_gguf(GGUF_REPO, "Q4_K_M", tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_partial_longer_than_the_file_is_discarded(gguf_repo: HubServer, smollm2_path: Path, tmp_path: Path) -> None:
    info = HubFile(GGUF_FILE, smollm2_path.stat().st_size, sha256_file(smollm2_path))
    partial_path(tmp_path / GGUF_FILE, info).write_bytes(b"x" * (info.size + 1))  # type: ignore[operator]
    got = download_gguf(GGUF_REPO, "Q4_K_M", tmp_path)
    assert "range" not in gguf_repo.gets_of(GGUF_FILE)[0].headers
    assert got.sha256 == info.sha256


@pytest.mark.slow
def test_split_gguf_is_downloaded_and_merged(
    hub: HubServer,
    smollm2_parts: list[Path],
    smollm2_path: Path,
    tmp_path: Path,
) -> None:
    hub.add_repo("tester/split-GGUF", {f"Q4_K_M/{p.name}": p for p in smollm2_parts} | {"README.md": b"x"})
    got = download_gguf("tester/split-GGUF", "Q4_K_M", tmp_path)
    assert got.path.name == "SmolLM2-Q4_K_M.gguf" and len(got.files) == 3
    # gguf-py's split writer and our merge are exact inverses: the original file comes back.
    assert got.sha256 == sha256_file(smollm2_path)
    assert [p.name for p in tmp_path.iterdir()] == ["SmolLM2-Q4_K_M.gguf"]


# --- hub errors --------------------------------------------------------------------------------
def test_unknown_repo_is_a_404_with_a_next_step(hub: HubServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=rf"nobody/nothing was not found on {hub.url} \(HTTP 404\).*HF_TOKEN"):
        download_gguf("nobody/nothing", "Q4_K_M", tmp_path)


def test_private_repo_needs_hf_token(
    hub: HubServer,
    smollm2_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub.add_repo("corp/private-GGUF", {"m-Q4_K_M.gguf": smollm2_path}, token="hf_secret")
    with pytest.raises(DownloadError, match=r"HTTP 401.*set HF_TOKEN"):
        download_gguf("corp/private-GGUF", "Q4_K_M", tmp_path)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert download_gguf("corp/private-GGUF", "Q4_K_M", tmp_path).path.exists()
    assert hub.gets_of("m-Q4_K_M.gguf")[0].headers["authorization"] == "Bearer hf_secret"


def test_gated_repo_says_accept_the_terms(hub: HubServer, tmp_path: Path) -> None:
    hub.add_repo("meta/gated-GGUF", {"m-Q4_K_M.gguf": b"x"}, token="hf_ok", gated=True)
    with pytest.raises(DownloadError, match=r"gated \(HTTP 403\).*accept"):
        download_gguf("meta/gated-GGUF", "Q4_K_M", tmp_path)


def test_unreachable_hub_names_the_endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with HubServer() as gone:
        url = gone.url
    monkeypatch.setenv("HF_ENDPOINT", url)  # nothing listens there any more
    with pytest.raises(DownloadError, match=rf"cannot reach the hub at {url}.*HF_ENDPOINT"):
        download_gguf("o/r-GGUF", "Q4_K_M", tmp_path)


def test_server_error_during_the_file_keeps_the_partial(gguf_repo: HubServer, tmp_path: Path) -> None:
    gguf_repo.status[GGUF_FILE] = 500
    with pytest.raises(DownloadError, match="HTTP 500"):
        download_gguf(GGUF_REPO, "Q4_K_M", tmp_path)
    assert not (tmp_path / GGUF_FILE).exists()


# --- checkpoints -------------------------------------------------------------------------------
CHECKPOINT: dict[str, bytes | Path] = {
    "model-00001-of-00002.safetensors": b"shard one",
    "model-00002-of-00002.safetensors": b"shard two",
    "model.safetensors.index.json": b'{"weight_map": {}}',
    "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
    "generation_config.json": b"{}",
    "tokenizer.json": b"{}",
    "tokenizer_config.json": b"{}",
    "special_tokens_map.json": b"{}",
    "pytorch_model-00001-of-00002.bin": b"pickle",
    "onnx/model.onnx": b"onnx",
    "original/consolidated.00.pth": b"pickle",
    "README.md": b"readme",
}
WANTED = {n for n in CHECKPOINT if not n.endswith((".bin", ".onnx", ".pth", ".md"))}


def test_checkpoint_download_takes_only_what_conversion_needs(hub: HubServer, tmp_path: Path) -> None:
    hub.add_repo("tester/Tiny-Llama", CHECKPOINT)
    folder = download_checkpoint("tester/Tiny-Llama")
    got = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert got == WANTED
    assert (folder / "model-00002-of-00002.safetensors").read_bytes() == b"shard two"
    assert folder.is_relative_to(tmp_path / "hf-home" / "hub")  # the HF cache, under HF_HOME
    fetched = {r.path.rsplit("/", 1)[-1] for r in hub.requests if r.method == "GET" and "/resolve/" in r.path}
    assert not any(n.endswith((".bin", ".pth", ".onnx", ".md")) for n in fetched)


def test_checkpoint_folder_is_a_local_folder_as_given_else_a_hub_snapshot(
        hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``--rerank MODEL`` loads from (the registry's resolve_model is for GGUF models)."""
    hub.add_repo("tester/Tiny-Llama", CHECKPOINT)
    local = tmp_path / "work" / "tester" / "Tiny-Llama"
    local.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    assert checkpoint_folder(local) == local
    assert checkpoint_folder("tester/Tiny-Llama") == Path("tester/Tiny-Llama")  # a folder by that name wins
    assert hub.requests == []
    local.rmdir()
    fetched = checkpoint_folder("tester/Tiny-Llama")
    assert fetched.is_relative_to(tmp_path / "hf-home" / "hub")
    assert (fetched / "model-00002-of-00002.safetensors").read_bytes() == b"shard two"


def test_consolidated_duplicate_is_skipped_when_shards_are_indexed(hub: HubServer) -> None:
    hub.add_repo("mistralai/Tiny-Mistral", {**CHECKPOINT, "consolidated.safetensors": b"whole model again"})
    folder = download_checkpoint("mistralai/Tiny-Mistral")
    got = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert got == WANTED
    assert hub.gets_of("consolidated.safetensors") == []


def test_pickle_only_checkpoint_is_refused(hub: HubServer) -> None:
    hub.add_repo("old/bert", {"pytorch_model.bin": b"pickle", "config.json": b"{}"})
    with pytest.raises(DownloadError, match=r"only pickle weights \(pytorch_model.bin\).*run code"):
        download_checkpoint("old/bert")
    assert not any("/resolve/" in r.path for r in hub.requests)


@pytest.mark.slow
def test_a_file_already_in_the_hub_cache_is_not_downloaded_again(
    gguf_repo: HubServer,
    smollm2_path: Path,
    tmp_path: Path,
) -> None:
    from huggingface_hub import hf_hub_download

    from runtime.models.hub import hub_cache_dir

    hf_hub_download(GGUF_REPO, GGUF_FILE, cache_dir=hub_cache_dir(), endpoint=gguf_repo.url)
    gguf_repo.requests.clear()
    got = download_gguf(GGUF_REPO, "Q4_K_M", tmp_path)
    assert gguf_repo.gets_of(GGUF_FILE) == []
    assert got.sha256 == sha256_file(smollm2_path)
