"""Tiny checkpoints built in the tests: random weights, real tokenizers trained on the spot.

* ``mistral_spm``: MistralForCausalLM saved by transformers in float16, with a SentencePiece
  BPE ``tokenizer.model`` (byte fallback, as Llama 2 / Mistral 7B use).
* ``qwen2_bpe``: Qwen2ForCausalLM in float32 with random (non-zero) q/k/v biases and a
  byte-level BPE tokenizer.json using Qwen2's pre-tokenizer regex.
* ``llama_bpe``: a 2-layer bf16 LlamaForCausalLM in two shards, written without torch.

Weights are drawn with a larger spread than transformers' default init (and a wider lm_head)
so the logits spread over about ±15 and top-1 and difference checks mean something.
"""

# transformers' config classes declare fewer keyword arguments than they accept (rope_theta,
# **kwargs spread from a dict), so these calls are not argument-checked here.
# mypy: disable-error-code="arg-type, call-arg, call-overload"

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from convert.pretokenizer import LLAMA3_REGEX, QWEN2_REGEX
from tests.convert.samples import TRAINING_TEXT

_DIMS = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5)


def _randomize(model: object, seed: int, std: float = 0.15) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():  # type: ignore[attr-defined]
            if "norm" in name:
                param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=generator))
            else:
                scale = 4 * std if "lm_head" in name else std
                param.copy_(scale * torch.randn(param.shape, generator=generator))


def _save_model(model: object, folder: Path, dtype: str) -> None:
    import torch

    model = model.to({"f16": torch.float16, "f32": torch.float32, "bf16": torch.bfloat16}[dtype])  # type: ignore[attr-defined]
    model.save_pretrained(folder, safe_serialization=True)  # type: ignore[attr-defined]


def train_sentencepiece(folder: Path, vocab_size: int = 600) -> Path:
    """A SentencePiece BPE model with byte fallback, like Llama 2's (unk 0, bos 1, eos 2).

    character_coverage < 1 leaves rare characters out, so byte fallback gets exercised.
    """
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TRAINING_TEXT.splitlines() * 3), model_prefix=str(folder / "tokenizer"),
        vocab_size=vocab_size, model_type="bpe", byte_fallback=True, split_digits=True,
        character_coverage=0.98, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=True, allow_whitespace_only_pieces=True, minloglevel=2,
    )
    return folder / "tokenizer.model"


def train_byte_level_bpe(regex: str, vocab_size: int = 400) -> dict:
    """A byte-level BPE tokenizer.json (as a dict) with the given pre-tokenizer split regex."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_TEXT.splitlines(), trainer)
    return json.loads(tokenizer.to_str())


def mistral_spm(folder: Path) -> Path:
    """MistralForCausalLM (float16) + SentencePiece tokenizer.model."""
    from transformers import MistralConfig, MistralForCausalLM

    model_file = train_sentencepiece(folder)
    import sentencepiece as spm

    n_vocab = spm.SentencePieceProcessor(model_file=str(model_file)).vocab_size()
    config = MistralConfig(vocab_size=n_vocab, rope_theta=10000.0, tie_word_embeddings=False,
                           bos_token_id=1, eos_token_id=2, **_DIMS)
    model = MistralForCausalLM(config)
    _randomize(model, seed=1)
    _save_model(model, folder, "f16")
    (folder / "tokenizer_config.json").write_text(json.dumps(spm_tokenizer_config(legacy=True)))
    return folder


def spm_tokenizer_config(legacy: bool) -> dict:
    """tokenizer_config.json as Mistral-7B-v0.1 has it (``legacy: true``); Llama-2 has ``false``."""
    special = {str(i): {"content": text, "lstrip": False, "normalized": False, "rstrip": False,
                        "single_word": False, "special": True}
               for i, text in enumerate(["<unk>", "<s>", "</s>"])}
    return {
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": special,
        "additional_special_tokens": [], "bos_token": "<s>", "clean_up_tokenization_spaces": False,
        "eos_token": "</s>", "legacy": legacy, "model_max_length": 32768, "pad_token": None,
        "sp_model_kwargs": {}, "spaces_between_special_tokens": False,
        "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>", "use_default_system_prompt": False,
        "chat_template": "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}",
    }


def qwen2_bpe(folder: Path) -> Path:
    """Qwen2ForCausalLM (float32, random q/k/v biases) + byte-level BPE with Qwen2's regex."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = train_byte_level_bpe(QWEN2_REGEX)
    n_tokens = len(tokenizer["model"]["vocab"])
    # Qwen2 checkpoints pad the embedding beyond the tokenizer (151936 rows, 151646 tokens).
    config = Qwen2Config(vocab_size=n_tokens + 12, rope_theta=1000000.0, tie_word_embeddings=False,
                         bos_token_id=0, eos_token_id=2, **_DIMS)
    model = Qwen2ForCausalLM(config)
    _randomize(model, seed=2)
    _save_model(model, folder, "f32")
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "bos_token": None, "add_bos_token": False,
    }))
    return folder


def _write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str) -> None:
    """Write ``tensors`` (float32 arrays) as a safetensors file in ``dtype`` (F32/F16/BF16)."""
    blobs, header, offset = [], {}, 0
    for name, values in tensors.items():
        if dtype == "BF16":
            raw = (values.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            raw = values.astype({"F32": "<f4", "F16": "<f2"}[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(values.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as fh:
        fh.write(len(encoded).to_bytes(8, "little") + encoded)
        for raw in blobs:
            fh.write(raw)


def llama_weights(n_vocab: int, seed: int = 3) -> dict[str, np.ndarray]:
    """Random weights with a 2-layer Llama's names and shapes (float32)."""
    rng = np.random.default_rng(seed)
    h, ff, n_layer = _DIMS["hidden_size"], _DIMS["intermediate_size"], _DIMS["num_hidden_layers"]
    kv = h // _DIMS["num_attention_heads"] * _DIMS["num_key_value_heads"]
    shapes = {"model.embed_tokens.weight": (n_vocab, h), "model.norm.weight": (h,), "lm_head.weight": (n_vocab, h)}
    for i in range(n_layer):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
            p + "mlp.gate_proj.weight": (ff, h), p + "mlp.up_proj.weight": (ff, h),
            p + "mlp.down_proj.weight": (h, ff),
        })
    weights = {}
    for name, shape in shapes.items():
        if "norm" in name:
            weights[name] = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            scale = 0.6 if name == "lm_head.weight" else 0.15
            weights[name] = (scale * rng.standard_normal(shape)).astype(np.float32)
    return weights


def llama_bpe(folder: Path) -> Path:
    """A 2-layer bf16 LlamaForCausalLM in two shards with an index, built without torch."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_byte_level_bpe(LLAMA3_REGEX, vocab_size=300)
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    weights = llama_weights(len(tokenizer["model"]["vocab"]))
    names = list(weights)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for shard, members in shards.items():
        _write_safetensors(folder / shard, {n: weights[n] for n in members}, "BF16")
    weight_map = {n: shard for shard, members in shards.items() for n in members}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = dict(_DIMS, architectures=["LlamaForCausalLM"], model_type="llama",
                  vocab_size=len(tokenizer["model"]["vocab"]), rope_theta=10000.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder
