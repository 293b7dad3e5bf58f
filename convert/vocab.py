"""The tokenizer of a checkpoint, written as llama.cpp expects it.

Two kinds are supported:

* ``tokenizer.json`` byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM): GGUF tokenizer model
  ``gpt2`` with its merges and a ``tokenizer.ggml.pre`` name that selects llama.cpp's
  pre-tokenizer regex (see :mod:`convert.pretokenizer`).
* SentencePiece ``tokenizer.model`` (Llama 2, Mistral 7B): GGUF tokenizer model ``llama`` with
  piece scores and types.

Special token ids, add-BOS/EOS flags and the chat template come from gguf's SpecialVocab
(tokenizer_config.json, config.json). The vocabulary is padded with unused tokens up to the
embedding's row count, as llama.cpp needs one token per row.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from convert.pretokenizer import detect_pre_tokenizer
from runtime.errors import ConvertError

logger = logging.getLogger(__name__)

_T = gguf.TokenType


@dataclass
class Vocab:
    """Everything the GGUF's ``tokenizer.*`` keys need."""

    model: str                       # "gpt2" (byte-level BPE) or "llama" (SentencePiece)
    tokens: list[str]
    token_types: list[int]
    scores: list[float] | None = None
    pre: str | None = None           # BPE only
    add_space_prefix: bool | None = None  # SentencePiece only
    merges_from_json: bool = False

    def __len__(self) -> int:
        return len(self.tokens)


def load_vocab(folder: Path, n_vocab: int) -> Vocab:
    """Read the tokenizer in ``folder``, padded to ``n_vocab`` tokens (the embedding rows)."""
    folder = Path(folder)
    if (folder / "tokenizer.model").is_file():
        vocab = _sentencepiece_vocab(folder)
    elif (folder / "tokenizer.json").is_file():
        vocab = _bpe_vocab(folder)
    else:
        raise ConvertError(f"no tokenizer.json or tokenizer.model in {folder}",
                           hint="download the tokenizer files with the weights")
    if len(vocab) > n_vocab:
        raise ConvertError(f"the tokenizer has {len(vocab)} tokens but the embedding only "
                           f"{n_vocab} rows", hint="the tokenizer belongs to another model")
    for i in range(len(vocab), n_vocab):
        vocab.tokens.append(f"[PAD{i}]")
        vocab.token_types.append(_T.UNUSED)
        if vocab.scores is not None:
            vocab.scores.append(-1000.0)
    return vocab


def _bpe_vocab(folder: Path) -> Vocab:
    try:
        data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConvertError(f"tokenizer.json in {folder} is not valid JSON ({exc})",
                           hint="download the tokenizer files again") from None
    if not isinstance(data, dict):
        raise ConvertError(f"tokenizer.json in {folder} is not a JSON object",
                           hint="download the tokenizer files again")
    model = data.get("model") or {}
    decoder = data.get("decoder") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or decoder.get("type") != "ByteLevel":
        raise ConvertError(
            f"tokenizer.json in {folder} is a {model.get('type')} tokenizer without byte-level "
            "decoding; rt converts byte-level BPE tokenizer.json or SentencePiece tokenizer.model",
            hint="add the model's tokenizer.model file to the folder",
        )
    by_id: dict[int, tuple[str, int]] = {i: (text, _T.NORMAL) for text, i in model["vocab"].items()}
    for added in data.get("added_tokens") or []:
        added_kind = _T.CONTROL if added.get("special") else _T.USER_DEFINED
        by_id[int(added["id"])] = (added["content"], int(added_kind))
    size = max(by_id) + 1 if by_id else 0
    tokens: list[str] = []
    types: list[int] = []
    for i in range(size):
        text, kind = by_id.get(i, (f"[PAD{i}]", int(_T.UNUSED)))
        tokens.append(text)
        types.append(kind)
    return Vocab("gpt2", tokens, types, pre=detect_pre_tokenizer(folder), merges_from_json=True)


def _sentencepiece_vocab(folder: Path) -> Vocab:
    try:
        from sentencepiece import SentencePieceProcessor
    except ImportError:  # pragma: no cover - sentencepiece is a dependency
        raise ConvertError("reading tokenizer.model needs the sentencepiece package",
                           hint="pip install sentencepiece") from None
    sp = SentencePieceProcessor()
    if not sp.LoadFromFile(str(folder / "tokenizer.model")):  # pragma: no cover
        raise ConvertError(f"tokenizer.model in {folder} is unreadable")
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.IdToPiece(i))
        scores.append(float(sp.GetScore(i)))
        types.append(_piece_type(sp, i))
    for text, i in _added_tokens(folder, sp.vocab_size()):
        while len(tokens) <= i:
            tokens.append(f"[PAD{len(tokens)}]")
            scores.append(-1000.0)
            types.append(_T.UNUSED)
        tokens[i], scores[i], types[i] = text, -1000.0, _T.USER_DEFINED
    # SentencePiece's normalizer adds a leading "▁" when add_dummy_prefix is on; read it off
    # an encoding rather than parsing the model protobuf.
    first = sp.EncodeAsPieces("a")
    add_space_prefix = bool(first) and first[0].startswith("\u2581")
    return Vocab("llama", tokens, types, scores=scores, add_space_prefix=add_space_prefix)


def _piece_type(sp: Any, i: int) -> int:
    if sp.IsUnknown(i):
        return _T.UNKNOWN
    if sp.IsControl(i):
        return _T.CONTROL
    if sp.IsUnused(i):
        return _T.UNUSED
    if sp.IsByte(i):
        return _T.BYTE
    return _T.NORMAL


def _added_tokens(folder: Path, base_size: int) -> list[tuple[str, int]]:
    """Tokens added on top of a SentencePiece model (added_tokens.json), ids >= base size."""
    path = folder / "added_tokens.json"
    if not path.is_file():
        return []
    added = json.loads(path.read_text(encoding="utf-8"))
    return sorted(((text, int(i)) for text, i in added.items() if int(i) >= base_size),
                  key=lambda item: item[1])


def add_vocab(writer: gguf.GGUFWriter, vocab: Vocab, folder: Path) -> None:
    """Write ``vocab`` plus special tokens, add-token flags and chat template to ``writer``."""
    writer.add_tokenizer_model(vocab.model)
    if vocab.pre is not None:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    if vocab.add_space_prefix is not None:
        writer.add_add_space_prefix(vocab.add_space_prefix)
    special = gguf.SpecialVocab(folder, load_merges=vocab.merges_from_json, n_vocab=len(vocab))
    special.add_to_gguf(writer, quiet=True)
