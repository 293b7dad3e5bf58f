"""Name the BPE pre-tokenizer for ``tokenizer.ggml.pre``, the way llama.cpp identifies it.

llama.cpp cannot run a tokenizer.json's pre-tokenizer; it ships its own regexes and picks them
by the name in ``tokenizer.ggml.pre``. A missing or wrong name makes llama.cpp fall back to
its default split and warn that generation quality is degraded.

llama.cpp's converter names a tokenizer by tokenizing a fixed check text and hashing the token
ids (sha256 of the Python ``str`` of the id list): same hash, same tokenizer. We compute the
same hash with the ``tokenizers`` library; the table holds the hashes of the published
tokenizers of the families rt converts (facts from llama.cpp's ``convert_hf_to_gguf.py``).
A tokenizer whose hash is unknown (a fine-tune that added tokens, a new model) is recognised
by the structure of its pre-tokenizer instead: the split regex it declares.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from runtime.errors import ConvertError

logger = logging.getLogger(__name__)

CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis "
    "concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not "
    "sure I'll make it, 'D you like some tea? We'Ve a'lL"
)

KNOWN_HASHES: Mapping[str, str] = {
    # Llama 3 / 3.1 / 3.2 (meta-llama/Meta-Llama-3-8B) and Smaug (Llama 3 with other specials)
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
    "c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d": "smaug-bpe",
    # Qwen1.5 / Qwen2 / Qwen2.5 (Qwen/Qwen1.5-7B), Qwen3-Embedding, DeepSeek-R1 Qwen distills
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",
    "b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5": "deepseek-r1-qwen",
    # SmolLM / SmolLM2 (HuggingFaceTB/SmolLM-135M)
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    # GPT-2 (openai-community/gpt2)
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
    # Mistral Nemo's tekken and Pixtral (byte-level BPE Mistral models)
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",
    "0e9433cbbb161f89e264eb32e8e64bfe69e834973ffca5d41d3948a604a3e2a3": "pixtral",
    # DeepSeek LLM / Coder (Llama architecture)
    "049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754": "deepseek-llm",
    "347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821": "deepseek-coder",
}

# Split regexes as they appear in tokenizer.json, for tokenizers whose hash is unknown.
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_REGEX_NAMES = {LLAMA3_REGEX: "llama-bpe", QWEN2_REGEX: "qwen2"}


def tokenizer_hash(tokenizer_json: Path) -> str:
    """sha256 of the ids of :data:`CHECK_TEXT`, as llama.cpp's converter computes it."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_json))
    except Exception as exc:  # the Rust library raises bare Exception ("Token `x` out of vocabulary")
        raise ConvertError(f"{tokenizer_json} cannot be loaded by the tokenizers library ({exc})",
                           hint="download the tokenizer files again, or upgrade the tokenizers package") from None
    ids = tokenizer.encode(CHECK_TEXT).ids
    return hashlib.sha256(str(list(ids)).encode()).hexdigest()


def _steps(node: Mapping[str, Any] | None) -> Iterator[Mapping[str, Any]]:
    if not node:
        return
    if node.get("type") == "Sequence":
        for child in node.get("pretokenizers") or []:
            yield from _steps(child)
    else:
        yield node


def pre_tokenizer_by_structure(tokenizer: Mapping[str, Any]) -> str | None:
    """The llama.cpp pre-tokenizer matching tokenizer.json's declared split, if any."""
    steps = list(_steps(tokenizer.get("pre_tokenizer")))
    regexes = [s.get("pattern", {}).get("Regex") for s in steps if s.get("type") == "Split"]
    if len(regexes) == 1 and regexes[0] in _REGEX_NAMES:
        return _REGEX_NAMES[regexes[0]]
    kinds = [s.get("type") for s in steps]
    byte_level_regex = any(s.get("type") == "ByteLevel" and s.get("use_regex", True) for s in steps)
    if kinds == ["ByteLevel"] and byte_level_regex:
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and byte_level_regex and steps[0].get("individual_digits"):
        return "smollm"
    return None


def detect_pre_tokenizer(folder: Path) -> str:
    """The ``tokenizer.ggml.pre`` name for ``folder``'s tokenizer.json ("default" if unknown)."""
    path = Path(folder) / "tokenizer.json"
    digest = tokenizer_hash(path)
    logger.debug("pre-tokenizer check hash %s", digest)
    if digest in KNOWN_HASHES:
        return KNOWN_HASHES[digest]
    name = pre_tokenizer_by_structure(json.loads(path.read_text(encoding="utf-8")))
    if name is not None:
        return name
    logger.warning(
        "the BPE pre-tokenizer of %s is not one llama.cpp knows (hash %s); using 'default', "
        "which may split text differently from the original tokenizer", path, digest,
    )
    return "default"
