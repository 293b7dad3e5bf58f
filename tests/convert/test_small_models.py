"""A SentencePiece-tokenizer model and a model with q/k/v biases, against transformers.

Both are tiny random models built in the test (tests/convert/tiny_models.py): a float16
MistralForCausalLM with a trained SentencePiece tokenizer.model, and a float32 Qwen2 with
random q/k/v biases and a byte-level BPE using Qwen2's pre-tokenizer regex. Their logits span
about ±20; F32 conversions agree with transformers to 0.1 (measured 0.02-0.03).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from convert.pipeline import convert_checkpoint
from tests.convert import tiny_models
from tests.convert.llamaref import LlamaRef
from tests.convert.samples import LOGITS_TEXT, TOKENIZER_SAMPLES

pytestmark = pytest.mark.slow


def _hf_logits(folder: Path, ids: list[int]) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def _check_logits(gguf_path: Path, folder: Path, ids: list[int], max_diff: float) -> None:
    reference = _hf_logits(folder, ids)
    with LlamaRef(gguf_path) as ref:
        logits = ref.logits(ids)
    assert logits.shape == reference.shape
    top1 = (logits.argmax(1) == reference.argmax(1)).mean()
    diff = np.abs(logits - reference).max()
    print(f"{gguf_path.name}: top-1 {top1:.3f}, max |diff| {diff:.4f}")
    assert top1 >= 0.98, top1
    assert diff <= max_diff, diff


# Text around SentencePiece's control tokens, which transformers and llama.cpp (parse_special)
# both split out; a dummy prefix "▁" goes before each text chunk in legacy mode.
_SPM_SPECIAL_SAMPLES = ["<s>x</s>", "<s> x</s>y", "[INST] hi [/INST]</s>", "</s> b"]


@pytest.fixture(scope="module")
def mistral_gguf(tiny_mistral_spm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mistral-gguf")
    return convert_checkpoint(tiny_mistral_spm, folder / "mistral.gguf", "F32").path


def _hf_tokenizer(tiny_mistral_spm: Path, folder: Path, *, legacy: bool) -> Any:
    """transformers' tokenizer built from tokenizer.model with a Mistral/Llama-2 tokenizer_config."""
    from transformers import AutoTokenizer

    folder.mkdir()
    for name in ("config.json", "tokenizer.model"):
        shutil.copy(tiny_mistral_spm / name, folder / name)
    config = tiny_models.spm_tokenizer_config(legacy=legacy)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return AutoTokenizer.from_pretrained(folder)


def test_sentencepiece_mistral(tiny_mistral_spm: Path, mistral_gguf: Path, tmp_path: Path) -> None:
    import sentencepiece as spm

    reader = gguf.GGUFReader(mistral_gguf)
    assert reader.fields["tokenizer.ggml.model"].contents() == "llama"
    assert reader.fields["tokenizer.ggml.add_space_prefix"].contents() is True
    assert reader.fields["tokenizer.ggml.add_bos_token"].contents() is True
    assert reader.fields["tokenizer.ggml.add_eos_token"].contents() is False
    assert "[INST]" in reader.fields["tokenizer.chat_template"].contents()

    sp = spm.SentencePieceProcessor(model_file=str(tiny_mistral_spm / "tokenizer.model"))
    # Mistral-7B-v0.1's config (legacy: true): transformers agrees with SentencePiece.
    hf = _hf_tokenizer(tiny_mistral_spm, tmp_path / "hf", legacy=True)
    with LlamaRef(mistral_gguf, n_ctx=64) as ref:
        for text in TOKENIZER_SAMPLES:
            assert ref.tokenize(text) == sp.encode(text), text
            assert ref.tokenize(text, add_special=True, parse_special=True) == hf.encode(text), text
        for text in _SPM_SPECIAL_SAMPLES:
            assert ref.tokenize(text, add_special=True, parse_special=True) == hf.encode(text), text
        assert ref.tokenize("Hello", add_special=True)[0] == sp.bos_id()
    ids = [sp.bos_id()] + sp.encode(LOGITS_TEXT)[:200]
    _check_logits(mistral_gguf, tiny_mistral_spm, ids, max_diff=0.1)


def test_sentencepiece_non_legacy_hf(tiny_mistral_spm: Path, mistral_gguf: Path, tmp_path: Path) -> None:
    """With Llama-2's ``legacy: false`` and no tokenizer.json, transformers 5 departs from
    SentencePiece in two places that a GGUF cannot express; llama.cpp follows SentencePiece
    (and legacy mode), which is what the model was trained with. Everything else agrees.

    1. Text that starts with a space loses SentencePiece's dummy prefix: the Metaspace
       pre-tokenizer (prepend_scheme "first") skips it when the text already starts with "▁",
       and transformers compensates only in legacy mode. So HF(" x") == SentencePiece("x").
    2. Text right after a special token gets no dummy prefix ("<s>x" -> "<s>", "x"), where
       llama.cpp adds one ("<s>", "▁x"). llama.cpp has no switch for this.
    Only the tokenizer.model path is affected: transformers builds that tokenizer itself
    (convert_slow_tokenizer.build_tokenizer_from_spm_proto). Both quirks are pinned, so a
    transformers upgrade that changes them shows up here.
    """
    import sentencepiece as spm

    hf = _hf_tokenizer(tiny_mistral_spm, tmp_path / "hf", legacy=False)
    encode = hf.encode
    with LlamaRef(mistral_gguf, n_ctx=64) as ref:
        for text in TOKENIZER_SAMPLES:
            if text.startswith(" "):  # quirk 1
                assert encode(text, add_special_tokens=False) != ref.tokenize(text), text
                assert encode(text, add_special_tokens=False) == ref.tokenize(text[1:]), text
            else:
                assert encode(text) == ref.tokenize(text, add_special=True, parse_special=True), text
        ids = ref.tokenize("<s>x</s>", add_special=True, parse_special=True)  # quirk 2
    sp = spm.SentencePieceProcessor(model_file=str(tiny_mistral_spm / "tokenizer.model"))
    bos, eos = sp.bos_id(), sp.eos_id()
    assert ids == [bos, bos, sp.piece_to_id("\u2581x"), eos]
    assert encode("<s>x</s>") == [bos, bos, sp.piece_to_id("x"), eos]


def test_qwen2_biases(tiny_qwen2: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    result = convert_checkpoint(tiny_qwen2, tmp_path / "qwen2.gguf", "F32")
    assert result.architecture == "qwen2"
    reader = gguf.GGUFReader(result.path)
    names = {t.name for t in reader.tensors}
    assert {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias", "output.weight"} <= names
    assert reader.fields["tokenizer.ggml.pre"].contents() == "qwen2"
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    assert tokens[-1].startswith("[PAD")  # padded up to the embedding's rows

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2)
    with LlamaRef(result.path, n_ctx=64) as ref:
        for text in TOKENIZER_SAMPLES:
            expected = tokenizer.encode(text, add_special_tokens=False)
            assert ref.tokenize(text, parse_special=True) == expected, text
    ids = tokenizer.encode(LOGITS_TEXT, add_special_tokens=False)[:200]
    _check_logits(result.path, tiny_qwen2, ids, max_diff=0.1)


def test_qwen2_f16_and_q8_0(tiny_qwen2: Path, tmp_path: Path) -> None:
    """F16 output from f32 weights, and the quantized path with rows smaller than a K-block."""
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(tiny_qwen2).encode(LOGITS_TEXT, add_special_tokens=False)[:100]
    reference = _hf_logits(tiny_qwen2, ids)
    # Random weights give flat distributions (near ties), hence the modest Q8_0 top-1 bound.
    for quant, max_diff, min_top1 in (("F16", 0.2, 0.97), ("Q8_0", 2.0, 0.85)):
        result = convert_checkpoint(tiny_qwen2, tmp_path / f"qwen2-{quant}.gguf", quant)
        with LlamaRef(result.path) as ref:
            logits = ref.logits(ids)
        diff = np.abs(logits - reference).max()
        top1 = (logits.argmax(1) == reference.argmax(1)).mean()
        print(f"{quant}: top-1 {top1:.3f}, max |diff| {diff:.4f}")
        assert diff <= max_diff, quant
        assert top1 >= min_top1, quant


def test_llama3_rope_scaling(tiny_llama: Path, tmp_path: Path) -> None:
    """Llama 3.1's rope scaling becomes a rope_freqs tensor that llama.cpp applies correctly."""
    import json

    config = json.loads((tiny_llama / "config.json").read_text())
    config["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    (tiny_llama / "config.json").write_text(json.dumps(config))
    result = convert_checkpoint(tiny_llama, tmp_path / "llama31.gguf", "F32")
    rope = {t.name: t for t in gguf.GGUFReader(result.path).tensors}["rope_freqs.weight"]
    assert len(rope.data) == 8 and rope.data.max() == 8.0 and rope.data.min() == 1.0
    ids = list(np.random.default_rng(0).integers(3, config["vocab_size"], 200))
    _check_logits(result.path, tiny_llama, [int(i) for i in ids], max_diff=0.1)
