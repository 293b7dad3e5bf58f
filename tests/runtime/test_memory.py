"""The memory estimate on the real models, RT_MEMORY_LIMIT, and preflight's refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.config import LoadOptions
from runtime.env import memory_limit, parse_size
from runtime.errors import ConfigError, InsufficientMemoryError
from runtime.models.gguf_file import GGUFInfo, inspect_gguf
from runtime.models.memory import (
    available_memory,
    estimate_memory,
    kv_bytes_per_token,
    preflight,
    system_available_memory,
)
from tests.runtime.bad_gguf import write_hybrid_gguf

MiB = 1 << 20


@pytest.fixture(scope="module")
def smollm2(smollm2_path: Path) -> GGUFInfo:
    return inspect_gguf(smollm2_path)


def test_smollm2_estimate_matches_llama_cpp_log(smollm2: GGUFInfo) -> None:
    # llama.cpp 0.3.36 logs for SmolLM2 at n_ctx 4096, n_ubatch 512, n_outputs_max 1: "KV buffer size =
    # 90.00 MiB", "compute buffer size = 17.51 MiB", "output buffer size = 0.19 MiB" (test_memory_llama
    # checks live); the compute estimate is an upper bound: activations + one f16 mask + logits
    est = estimate_memory(smollm2, LoadOptions(n_ctx=4096, n_batch=512, max_draft=0))
    assert est.kv_cache == 90 * MiB
    assert est.compute == 512 * 4 * (3 * 1536 + 5 * 576) + 4096 * 512 * 2 + 2 * 49152 * 4  # 19.00 MiB
    assert (17.51 + 0.19) * MiB <= est.compute
    assert est.weights == smollm2.tensor_data_bytes and est.repack == 0
    assert est.total == est.weights + est.kv_cache + est.compute
    assert estimate_memory(smollm2, LoadOptions(n_ctx=4096, kv_type="q8_0")).kv_cache == int(47.8125 * MiB)


def test_gemma_estimate(gemma_path: Path) -> None:
    info = inspect_gguf(gemma_path)
    est = estimate_memory(info, LoadOptions(n_ctx=4096, max_draft=0))
    assert est.kv_cache == 72 * MiB  # 12.00 + 60.00 MiB in llama.cpp's log (swa_full)
    # logged 25.77 + 1.00 MiB; two masks (sliding window layers and the others)
    assert est.compute == 512 * 4 * (3 * 2048 + 5 * 640) + 2 * 4096 * 512 * 2 + 2 * 262144 * 4  # 28.25 MiB


def test_the_estimate_counts_a_logits_row_per_draft_token_the_context_reserves(gemma_path: Path) -> None:
    info = inspect_gguf(gemma_path)
    row = info.n_vocab * 4  # 1 MiB for Gemma's 262,144 tokens
    plain = estimate_memory(info, LoadOptions(n_ctx=4096, max_draft=0))
    drafting = estimate_memory(info, LoadOptions(n_ctx=4096, max_draft=8))
    assert drafting.compute - plain.compute == drafting.total - plain.total == 8 * row
    assert estimate_memory(info, LoadOptions(n_ctx=4096)).compute == drafting.compute  # the default: 8
    # n_outputs_max is capped to the micro-batch, as the engine caps it
    capped = estimate_memory(info, LoadOptions(n_ctx=4096, n_batch=4, max_draft=16))
    assert capped.compute - estimate_memory(info, LoadOptions(n_ctx=4096, n_batch=4, max_draft=0)).compute == 3 * row


def test_estimate_scales_and_options(smollm2: GGUFInfo) -> None:
    base = estimate_memory(smollm2, LoadOptions(n_ctx=2048))
    double = estimate_memory(smollm2, LoadOptions(n_ctx=4096))
    assert double.kv_cache == 2 * base.kv_cache
    trained = estimate_memory(smollm2, LoadOptions(n_ctx=0))  # 0: the model's trained context (8192)
    assert trained.kv_cache == 8192 * kv_bytes_per_token(smollm2, "f16")
    beyond = estimate_memory(smollm2, LoadOptions(n_ctx=100_000))  # capped as Model caps it
    assert beyond.kv_cache == trained.kv_cache
    repack = estimate_memory(smollm2, LoadOptions(repack=True))
    assert repack.repack == smollm2.tensor_data_bytes
    # the hybrid: a repacked copy of the weights, a second context (KV cache + compute) for it,
    # and the prompt's KV state in flight at the hand-over (up to a KV cache)
    assert repack.second_context == 2 * double.kv_cache + double.compute
    assert repack.total == double.total + repack.repack + repack.second_context
    smaller_batch = estimate_memory(smollm2, LoadOptions(n_batch=128))
    assert smaller_batch.compute < double.compute


def test_unknown_kv_type(smollm2: GGUFInfo) -> None:
    with pytest.raises(ConfigError, match="unknown KV cache type 'q3'"):
        estimate_memory(smollm2, LoadOptions(kv_type="q3"))


@pytest.mark.parametrize(("text", "expected"), [
    ("4G", 4_000_000_000), ("512M", 512_000_000), ("1.5GB", 1_500_000_000), ("8Gi", 8 << 30),
    ("100", 100), (" 2 gib ", 2 << 30),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "-1G", "lots", "4X", "nan"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


def test_memory_limit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RT_MEMORY_LIMIT", raising=False)
    assert memory_limit() is None
    assert available_memory() == pytest.approx(system_available_memory()[0], rel=0.2)
    monkeypatch.setenv("RT_MEMORY_LIMIT", "100M")
    assert memory_limit() == 100_000_000 and available_memory() == 100_000_000
    monkeypatch.setenv("RT_MEMORY_LIMIT", "a lot")
    with pytest.raises(ConfigError, match="RT_MEMORY_LIMIT: 'a lot' is not a size"):
        available_memory()


def test_preflight_fits(smollm2: GGUFInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RT_MEMORY_LIMIT", "10G")
    est = preflight(smollm2, LoadOptions())
    assert est.fits and est.available <= 10_000_000_000


def test_preflight_refuses_with_numbers(smollm2: GGUFInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RT_MEMORY_LIMIT", "200M")
    with pytest.raises(InsufficientMemoryError) as caught:
        preflight(smollm2, LoadOptions(n_ctx=4096))
    err = caught.value
    assert err.needed == 212_444_416 and err.available == 200_000_000  # with 9 rows of logits (max_draft 8)
    message = str(err)
    assert "needs 212.4 MB (weights 96.6 MB, f16 KV cache 94.4 MB for --ctx 4096, compute 21.5 MB)" in message
    assert "200.0 MB available (RT_MEMORY_LIMIT)" in message
    # 200 MB leaves room for 3584 tokens of f16 KV cache after weights and compute; the tip halves --ctx
    assert "try --ctx 2048, --kv-type q8_0, or a smaller model; --force skips this check" in message


def test_preflight_suggests_only_what_helps(smollm2: GGUFInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RT_MEMORY_LIMIT", "50M")  # less than the weights: no --ctx can help
    with pytest.raises(InsufficientMemoryError, match="try a smaller model; --force skips") as caught:
        preflight(smollm2, LoadOptions())
    assert "--ctx 2" not in str(caught.value)
    monkeypatch.setenv("RT_MEMORY_LIMIT", "300M")
    with pytest.raises(InsufficientMemoryError, match="try without --repack"):
        preflight(smollm2, LoadOptions(repack=True))


def test_preflight_force(smollm2: GGUFInfo, monkeypatch: pytest.MonkeyPatch,
                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("RT_MEMORY_LIMIT", "50M")
    est = preflight(smollm2, LoadOptions(force=True))
    assert not est.fits
    assert "loading anyway (--force)" in caplog.text


def test_kv_counts_each_layers_own_heads(tmp_path: Path) -> None:
    info = inspect_gguf(write_hybrid_gguf(tmp_path / "hybrid.gguf"))
    assert kv_bytes_per_token(info, "f16") == (2 + 0 + 1) * 16 * 2 * 2  # heads * head size * (K, V) * f16
    # q8_0 rows are whole blocks of 32: layer 0 (32 values) and layer 2 (16) take one block each for K and V
    assert kv_bytes_per_token(info, "q8_0") == 2 * 34 + 2 * 34
