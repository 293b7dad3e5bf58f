"""Direct quantization (safetensors -> Q4_K_M etc. in one pass) against llama.cpp's quantizer.

The reference is the two-step path: rt converts to a float GGUF that holds the checkpoint's
values exactly (BF16 for bf16, F16 for f16, F32 for f32 weights), then llama.cpp's
``llama_model_quantize`` quantizes it. The direct output must be the same file byte for byte:
tensor names, types, shapes and data, the metadata, the order and the alignment.

The tiny checkpoints (hidden size 64) exercise the fallbacks (no K-quant takes 64-wide rows);
``shaped`` (hidden 256, 16 layers, 4 query heads per KV head) exercises the K-quant kernels and
the per-layer mixture (use_more_bits, first 1/8, first 1/16, the GQA rule).
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
from click.testing import CliRunner

from convert import ggml_quant
from convert.pipeline import convert_checkpoint
from convert.quantize import QUANTIZED_TYPES, quantize_gguf
from runtime import fsutil
from runtime.cli import cli
from runtime.errors import ConvertError, InsufficientDiskError
from tests.convert import tiny_models
from tests.slow import slow_after_first, slow_unless

REQUIRED = ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "Q4_0"]
ALL = list(QUANTIZED_TYPES)
LOSSLESS = {"BF16": "BF16", "F16": "F16", "F32": "F32"}


def shaped_llama(folder: Path, n_layer: int = 16, dtype: str = "BF16", ffn: int = 768) -> Path:
    """A bf16 Llama whose rows K-quants take: hidden 256, FFN 768, 8 heads over 2 KV heads."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_models.train_byte_level_bpe(tiny_models.LLAMA3_REGEX, vocab_size=300)
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    n_vocab, hidden, kv = len(tokenizer["model"]["vocab"]), 256, 64
    rng = np.random.default_rng(7)
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (n_vocab, hidden),
                                          "model.norm.weight": (hidden,), "lm_head.weight": (n_vocab, hidden)}
    for i in range(n_layer):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (hidden,), p + "post_attention_layernorm.weight": (hidden,),
            p + "self_attn.q_proj.weight": (hidden, hidden), p + "self_attn.k_proj.weight": (kv, hidden),
            p + "self_attn.v_proj.weight": (kv, hidden), p + "self_attn.o_proj.weight": (hidden, hidden),
            p + "mlp.gate_proj.weight": (ffn, hidden), p + "mlp.up_proj.weight": (ffn, hidden),
            p + "mlp.down_proj.weight": (hidden, ffn),
        })
    weights = {name: (0.05 * rng.standard_normal(shape)).astype(np.float32) for name, shape in shapes.items()}
    tiny_models._write_safetensors(folder / "model.safetensors", weights, dtype)
    config = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=hidden,
                  intermediate_size=ffn, num_hidden_layers=n_layer, num_attention_heads=8,
                  num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5,
                  vocab_size=n_vocab, rope_theta=10000.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shaped_llama(tmp_path_factory.mktemp("shaped-llama"))


@pytest.fixture(scope="module")
def llama_bf16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.llama_bpe(tmp_path_factory.mktemp("llama-bpe") / "tiny-llama")


def _source_dtype(folder: Path) -> str:
    from runtime.models.safetensors import Checkpoint

    return max(Checkpoint.open(folder).tensors.values(), key=lambda ref: ref.nbytes).dtype


def _two_step(folder: Path, work: Path, quant: str) -> Path:
    float_type = LOSSLESS[_source_dtype(folder)]
    intermediate = work / f"{folder.name}-{float_type}.gguf"
    if not intermediate.exists():
        convert_checkpoint(folder, intermediate, float_type)
    reference = work / f"{folder.name}-two-step-{quant}.gguf"
    quantize_gguf(intermediate, reference, quant)
    return reference


def _assert_same_file(direct: Path, reference: Path, *, named: str | None = None) -> None:
    """Tensors (names, types, shapes, bytes) and metadata first, for a readable failure.

    ``named``: the direct file carries this general.name (rt convert's CLI names the model), so
    only the tensors and the other metadata are compared.
    """
    got, want = gguf.GGUFReader(direct), gguf.GGUFReader(reference)
    assert [(t.name, t.tensor_type.name, list(t.shape)) for t in got.tensors] == \
        [(t.name, t.tensor_type.name, list(t.shape)) for t in want.tensors]
    for g, w in zip(got.tensors, want.tensors):
        assert g.data.tobytes() == w.data.tobytes(), g.name
    if named is not None:
        assert got.fields["general.name"].contents() == named
    assert [(f.name, f.types, [bytes(p) for p in f.parts]) for f in got.fields.values()
            if named is None or f.name != "general.name"] == \
        [(f.name, f.types, [bytes(p) for p in f.parts]) for f in want.fields.values()
         if named is None or f.name != "general.name"]
    assert got.alignment == want.alignment
    if named is None:
        assert direct.read_bytes() == reference.read_bytes()


def _check(folder: Path, tmp_path: Path, quant: str) -> gguf.GGUFReader:
    reference = _two_step(folder, tmp_path, quant)
    direct = convert_checkpoint(folder, tmp_path / f"{folder.name}-direct-{quant}.gguf", quant).path
    _assert_same_file(direct, reference)
    return gguf.GGUFReader(direct)


@pytest.mark.parametrize("quant", slow_unless(ALL, "Q4_K_M"))  # the default quant in the fast run
def test_direct_matches_llamacpp_on_k_quant_rows(shaped: Path, tmp_path: Path, quant: str) -> None:
    reader = _check(shaped, tmp_path, quant)
    field = reader.fields["general.file_type"]
    assert int(field.parts[field.data[0]][0]) == QUANTIZED_TYPES[quant]


@pytest.mark.parametrize("quant", slow_after_first(REQUIRED))
def test_direct_matches_llamacpp_llama_bf16(llama_bf16: Path, tmp_path: Path, quant: str) -> None:
    _check(llama_bf16, tmp_path, quant)


@pytest.mark.slow  # its checkpoint takes 18 s to make on a loaded 2-core machine
@pytest.mark.parametrize("quant", REQUIRED)
def test_direct_matches_llamacpp_mistral_sentencepiece_f16(tiny_mistral_spm: Path, tmp_path: Path,
                                                           quant: str) -> None:
    _check(tiny_mistral_spm, tmp_path, quant)


@pytest.mark.parametrize("quant", slow_after_first(REQUIRED))
def test_direct_matches_llamacpp_qwen2_f32(tiny_qwen2: Path, tmp_path: Path, quant: str) -> None:
    _check(tiny_qwen2, tmp_path, quant)


@pytest.mark.slow
def test_direct_matches_llamacpp_smollm2_tied_embeddings(smollm2_hf: Path, tmp_path: Path) -> None:
    """A real model: 30 layers, tied embeddings (token_embd takes output's rule), 576-wide rows."""
    _check(smollm2_hf, tmp_path, "Q4_K_M")


@pytest.fixture(scope="module")
def mistral_7b_2_layers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mistral-7B's shapes (hidden 4096, FFN 14336, 32 heads over 8, vocab 32000), 2 layers: 1.4 GB."""
    from benchmarks.bench_convert import write_checkpoint

    folder = tmp_path_factory.mktemp("mistral-7b-2-layers") / "checkpoint"
    write_checkpoint(folder, 2)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("quant", REQUIRED)
def test_direct_matches_llamacpp_mistral_7b_shape(mistral_7b_2_layers: Path, tmp_path_factory: pytest.TempPathFactory,
                                                  quant: str) -> None:
    """About a minute per type on 2 free cores (the two-step reference takes most of it)."""
    work = mistral_7b_2_layers.parent
    try:
        _check(mistral_7b_2_layers, work, quant)
    finally:
        for leftover in work.glob("*-Q*.gguf"):
            leftover.unlink()


@pytest.mark.slow
def test_direct_matches_llamacpp_on_a_70b_layer_count(tmp_path: Path) -> None:
    """80 layers with grouped KV heads is a "70B" to llama.cpp: attn_v goes up to Q5_K."""
    folder = shaped_llama(tmp_path / "llama-80-layers", n_layer=80, ffn=256)
    reader = _check(folder, tmp_path, "Q4_K_S")
    assert {t.tensor_type.name for t in reader.tensors if "attn_v" in t.name} == {"Q5_K"}


def test_q4_k_m_mixture_follows_the_layer_pattern(shaped: Path, tmp_path: Path) -> None:
    reader = gguf.GGUFReader(convert_checkpoint(shaped, tmp_path / "q.gguf", "Q4_K_M").path)
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    more_bits = [i for i in range(16) if types[f"blk.{i}.ffn_down.weight"] == "Q6_K"]
    assert more_bits == [0, 1, 4, 7, 10, 13, 14, 15]  # first and last 1/8, every third between
    assert [i for i in range(16) if types[f"blk.{i}.attn_v.weight"] == "Q6_K"] == more_bits
    assert types["output.weight"] == "Q6_K" and types["token_embd.weight"] == "Q4_K"
    assert types["blk.3.attn_q.weight"] == "Q4_K" and types["blk.3.attn_norm.weight"] == "F32"


def test_cli_convert_takes_the_direct_path(shaped: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "cli.gguf"
    with caplog.at_level(logging.INFO, logger="convert.pipeline"):
        result = CliRunner().invoke(cli, ["convert", "--from", str(shaped), "--quant", "Q4_K_M",
                                          "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert any("in one pass" in r.getMessage() for r in caplog.records)
    _assert_same_file(out, _two_step(shaped, tmp_path, "Q4_K_M"), named=f"{shaped.name}-q4_k_m")


def test_missing_ggml_symbol_falls_back_to_two_steps(llama_bf16: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(ggml_quant, "REQUIRED_SYMBOLS", (*ggml_quant.REQUIRED_SYMBOLS, "ggml_no_such_function"))
    ggml_quant.load_ggml.cache_clear()
    try:
        with pytest.raises(ggml_quant.GgmlUnavailableError, match="ggml_no_such_function"):
            ggml_quant.load_ggml()
        with caplog.at_level(logging.WARNING, logger="convert.pipeline"):
            fallback = convert_checkpoint(llama_bf16, tmp_path / "fallback.gguf", "Q4_K_M").path
    finally:
        ggml_quant.load_ggml.cache_clear()
    assert any("two steps" in r.getMessage() and "ggml_no_such_function" in r.getMessage()
               for r in caplog.records)
    direct = convert_checkpoint(llama_bf16, tmp_path / "direct.gguf", "Q4_K_M").path
    assert fallback.read_bytes() == direct.read_bytes()


def test_direct_path_needs_disk_for_the_output_only(shaped: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "free_space", lambda folder: 1000)
    with pytest.raises(InsufficientDiskError) as info:
        convert_checkpoint(shaped, tmp_path / "x.gguf", "Q4_K_M", direct=False)
    two_step_need = info.value.needed
    with pytest.raises(InsufficientDiskError) as info:
        convert_checkpoint(shaped, tmp_path / "x.gguf", "Q4_K_M")
    direct_need = info.value.needed
    assert "intermediate" not in str(info.value)
    assert direct_need < two_step_need / 3
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_weights_are_a_clear_error_and_leave_no_file(tmp_path: Path, bad: float) -> None:
    """llama.cpp's two-step path refuses them too (its loader validates the float GGUF)."""
    from runtime.models.safetensors import Checkpoint

    folder = shaped_llama(tmp_path / "bad-llama", n_layer=2, dtype="F32")
    ref = Checkpoint.open(folder)["model.layers.1.mlp.up_proj.weight"]
    with open(ref.path, "r+b") as fh:
        fh.seek(ref.offset + 4 * 300)
        fh.write(np.array([bad], dtype="<f4").tobytes())
    out = tmp_path / "models" / "bad.gguf"
    with pytest.raises(ConvertError, match=r"blk\.1\.ffn_up\.weight: the weights hold NaN or inf values"):
        convert_checkpoint(folder, out, "Q4_K_M")
    assert list(out.parent.iterdir()) == []


# Converts in a child process that waits, after the first quantized tensor is written, for the
# test to signal it, so the signal lands mid-file.
_CHILD = """
import sys, time
from pathlib import Path
import convert.direct_quant
from convert.pipeline import convert_checkpoint

original = convert.direct_quant._Quantizer.quantize
calls = []
def quantize_then_wait(self, *args, **kwargs):
    if len(calls) == 2:
        Path(sys.argv[3]).touch()
        time.sleep(600)
    calls.append(1)
    return original(self, *args, **kwargs)
convert.direct_quant._Quantizer.quantize = quantize_then_wait
convert_checkpoint(Path(sys.argv[1]), Path(sys.argv[2]), "Q4_K_M")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT and SIGKILL are POSIX signals")
# collected on Windows too; the Ctrl-C case took 61 s on a loaded 2-core machine (the kill 7 s)
@pytest.mark.parametrize("signal_number", slow_unless([signal.SIGINT, getattr(signal, "SIGKILL", 9)],
                                                      getattr(signal, "SIGKILL", 9)))
def test_ctrl_c_or_kill_mid_file_leaves_no_final_file(shaped: Path, tmp_path: Path, signal_number: int) -> None:
    out_dir, ready = tmp_path / "models", tmp_path / "ready"
    final = out_dir / "shaped.gguf"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(shaped), str(final), str(ready)],
                             cwd=Path(__file__).resolve().parents[2], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert child.poll() is None, child.communicate()[1]
            assert time.monotonic() < deadline, "the converting child never started quantizing"
            time.sleep(0.05)
        assert [p.stat().st_size > 0 for p in out_dir.glob(f"{fsutil.TMP_MARK}*")] == [True]
        child.send_signal(signal_number)
        child.wait(timeout=60)  # no thread keeps it alive
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0 and not final.exists()
    leftovers = list(out_dir.glob(f"{fsutil.TMP_MARK}*"))
    if signal_number == signal.SIGINT:
        assert leftovers == []  # Ctrl-C cleans up at once ...
        assert b"KeyboardInterrupt" in child.stderr.read()  # type: ignore[union-attr]
    else:
        assert len(leftovers) == 1  # ... a kill cannot; the next run does
        convert_checkpoint(shaped, final, "Q4_K_M")
        assert final.exists() and list(out_dir.glob(f"{fsutil.TMP_MARK}*")) == []


def test_progress_is_reported_per_tensor_in_writing_order(llama_bf16: Path, tmp_path: Path) -> None:
    from convert.arch import architecture_for
    from convert.direct_quant import write_direct
    from convert.pipeline import direct_plan
    from runtime.models.safetensors import Checkpoint

    arch = architecture_for(json.loads((llama_bf16 / "config.json").read_text()))
    plan = direct_plan(arch, Checkpoint.open(llama_bf16), "Q4_K_M")
    seen: list[tuple[str, int, int]] = []
    write_direct(tmp_path / "p.gguf", arch.gguf_arch_name, lambda writer: None, plan,
                 gguf.GGMLQuantizationType.BF16, ggml_quant.load_ggml(), threads=3,
                 on_tensor=lambda name, done, total: seen.append((name, done, total)))
    assert seen == [(t.name, i, len(plan)) for i, t in enumerate(plan, 1)]
    assert [t.name for t in gguf.GGUFReader(tmp_path / "p.gguf").tensors] == [t.name for t in plan]
