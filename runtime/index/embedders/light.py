"""Query-time embeddings in numpy: a BERT encoder forward without torch.

At ``rt ask``, ``rt search``, ``rt chat`` and ``rt serve`` time rt embeds one query and a few
dozen sentences; importing torch and sentence-transformers for that took 5 s of a 9 s ``rt ask``
on an idle 2-core machine (docs/speed.md). :class:`LightEmbedder` runs the same pipeline as
sentence-transformers for a plain BERT-family folder (all-MiniLM-L6-v2 and models shaped like
it): the fast tokenizer from ``tokenizer.json`` (truncated to ``max_seq_length``), the encoder in
float32 (embeddings + LayerNorm; per layer self-attention with the padding mask, residual +
LayerNorm, feed-forward with the configured GELU, residual + LayerNorm), mean or CLS pooling as
``1_Pooling/config.json`` says, and L2 normalisation. Its vectors match sentence-transformers'
to cosine >= 0.9999 (tests/index/test_light_embedder.py), and it records the same ``name``, so an
index built with torch is searched with it.

Anything it does not understand exactly (another architecture, a Dense layer, prompts, custom
code, a missing file) makes it decline with :class:`Declined`; :func:`query_embedder` then loads
:class:`~runtime.index.embedders.sentence_transformers.SentenceTransformerEmbedder` as before. Indexing keeps
sentence-transformers (its batched forward is faster on many chunks).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.errors import RtError
from runtime.index.config import DEFAULT_EMBEDDING_MODEL
from runtime.index.embedders.base import canonical_model_name

if TYPE_CHECKING:
    from numpy.typing import NDArray


logger = logging.getLogger(__name__)

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
_POOLING_MODES = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean"}
_OTHER_POOLING = ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                  "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")
_SENTENCE_BERT_KEYS = {"max_seq_length", "do_lower_case"}
_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh")
_BATCH = 32  # texts per forward pass, sorted by length so a batch pads little
_BLAS_TURN = threading.Lock()


class Declined(Exception):
    """The folder is not one this embedder reproduces exactly (the message says why)."""


@dataclass(frozen=True)
class _Layer:
    query: tuple[NDArray[np.float32], NDArray[np.float32]]
    key: tuple[NDArray[np.float32], NDArray[np.float32]]
    value: tuple[NDArray[np.float32], NDArray[np.float32]]
    attention_out: tuple[NDArray[np.float32], NDArray[np.float32]]
    attention_norm: tuple[NDArray[np.float32], NDArray[np.float32]]
    intermediate: tuple[NDArray[np.float32], NDArray[np.float32]]
    output: tuple[NDArray[np.float32], NDArray[np.float32]]
    output_norm: tuple[NDArray[np.float32], NDArray[np.float32]]


class LightEmbedder:
    """all-MiniLM-L6-v2 (``None``) or a sentence-transformers BERT folder, run with numpy.

    Raises :class:`Declined` when the folder is anything else.
    """

    def __init__(self, model: str | None = None) -> None:
        self.name = canonical_model_name(model)
        folder = _folder(self.name)
        modules = _read_json(folder / "modules.json")
        transformer, pooling = _modules(folder, modules)
        settings = _read_json(transformer / "sentence_bert_config.json")
        if not isinstance(settings, dict) or not set(settings) <= _SENTENCE_BERT_KEYS:
            raise Declined(f"sentence_bert_config.json holds settings it does not know: {settings}")
        _check_no_prompts(folder)
        config = _read_json(transformer / "config.json")
        self._config = _check_config(config)
        self.dimension = int(config["hidden_size"])
        self.max_tokens = int(settings.get("max_seq_length") or 0)
        if not 0 < self.max_tokens <= int(config["max_position_embeddings"]):
            raise Declined(f"max_seq_length {self.max_tokens} is not within the model's positions")
        self._lower = bool(settings.get("do_lower_case", False))
        self._pooling = _pooling_mode(pooling, self.dimension)
        self._tokenizer, self._offsets = _tokenizers(transformer, self.max_tokens)
        self._weights = _Weights(transformer / "model.safetensors", config)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Normalised vectors of ``texts`` (forward passes of up to 32 texts of similar length)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        prepared = [text.strip() for text in texts]
        if self._lower:
            prepared = [text.lower() for text in prepared]
        encodings = self._tokenizer.encode_batch(prepared, add_special_tokens=True)
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        with _one_blas_thread():
            for start in range(0, len(order), _BATCH):
                batch = order[start:start + _BATCH]
                out[batch] = self._forward([encodings[i].ids for i in batch])
        return out

    def embed_query(self, query: str) -> NDArray[np.float32]:
        """The normalised vector of one query (this embedder declines models with prompts)."""
        return self.embed([query])[0]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of ``text`` (no special tokens, no truncation)."""
        return list(self._offsets.encode(text, add_special_tokens=False).offsets)

    def _forward(self, batch: list[list[int]]) -> NDArray[np.float32]:
        width = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.float32)
        for row, tokens in enumerate(batch):
            ids[row, :len(tokens)] = tokens
            mask[row, :len(tokens)] = 1.0
        hidden = _encode(self._weights, self._config, ids, mask)
        if self._pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = (hidden * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)[:, None]
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)


@functools.cache
def _thread_pools() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """numpy's BLAS on one thread while embedding: on a busy 2-core machine its two threads
    waiting for each other made a query take 224-288 ms against 20-38 ms on one, and 16
    chunks 9-30 s against 3-4 s (the same trap as torch's and FAISS's threads, see
    runtime/index/embedders/sentence_transformers.py). The setting is process-wide, so it is restored after, and
    embedding threads (rt serve) take turns so one cannot restore it under another."""
    with _BLAS_TURN, _thread_pools().limit(limits=1, user_api="blas"):
        yield


@dataclass(frozen=True)
class _Config:
    heads: int
    eps: float
    activation: str


def _encode(weights: _Weights, config: _Config, ids: NDArray[np.int64],
            mask: NDArray[np.float32]) -> NDArray[np.float32]:
    """The encoder's last hidden state, ``(batch, tokens, hidden)``."""
    batch, width = ids.shape
    hidden = weights.words[ids] + weights.positions[:width][None] + weights.token_type[None, None]
    hidden = _layer_norm(hidden, weights.embedding_norm, config.eps)
    size = hidden.shape[-1]
    head = size // config.heads
    bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]  # padding keys get no weight
    for layer in weights.layers:
        def split(x: NDArray[np.float32]) -> NDArray[np.float32]:
            return x.reshape(batch, width, config.heads, head).transpose(0, 2, 1, 3)

        q, k, v = (split(_linear(hidden, w)) for w in (layer.query, layer.key, layer.value))
        scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(head)) + bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, width, size)
        hidden = _layer_norm(_linear(context, layer.attention_out) + hidden, layer.attention_norm, config.eps)
        inner = _gelu(_linear(hidden, layer.intermediate), config.activation)
        hidden = _layer_norm(_linear(inner, layer.output) + hidden, layer.output_norm, config.eps)
    return hidden


def _linear(x: NDArray[np.float32], weight: tuple[NDArray[np.float32], NDArray[np.float32]]) -> NDArray[np.float32]:
    matrix, bias = weight  # matrix is stored transposed: (in, out)
    out = x.reshape(-1, matrix.shape[0]) @ matrix  # one 2-D GEMM, not one per sequence
    out += bias
    return out.reshape(*x.shape[:-1], matrix.shape[1])


def _layer_norm(x: NDArray[np.float32], weight: tuple[NDArray[np.float32], NDArray[np.float32]],
                eps: float) -> NDArray[np.float32]:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(variance + np.float32(eps)) * weight[0] + weight[1]


def _gelu(x: NDArray[np.float32], activation: str) -> NDArray[np.float32]:
    if activation == "gelu":  # exact: x * Phi(x)
        return np.float32(0.5) * x * (np.float32(1.0) + _erf(x / np.float32(math.sqrt(2.0))))
    inner = np.float32(math.sqrt(2.0 / math.pi)) * (x + np.float32(0.044715) * x * x * x)
    return (np.float32(0.5) * x * (np.float32(1.0) + np.tanh(inner))).astype(np.float32, copy=False)


def _erf(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """erf to within 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), elementwise in numpy."""
    z = np.abs(x)
    t = np.float32(1.0) / (np.float32(1.0) + np.float32(0.5) * z)
    poly = np.full_like(t, 0.17087277)
    for c in (-0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196,
              1.00002368, -1.26551223):
        poly = poly * t + np.float32(c)
    erfc = t * np.exp(poly - z * z)
    return np.copysign(np.float32(1.0) - erfc, x).astype(np.float32, copy=False)


class _Weights:
    """The encoder's tensors as float32 arrays (linear weights transposed once, for ``x @ W``)."""

    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        from runtime.models.safetensors import open_tensor, read_header

        if not path.is_file():
            raise Declined(f"{path.name} is missing (a pytorch_model.bin folder?)")
        try:
            header = read_header(path)
        except RtError as exc:
            raise Declined(str(exc)) from None
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in header else ""

        def tensor(name: str, shape: tuple[int, ...]) -> NDArray[np.float32]:
            ref = header.get(prefix + name)
            if ref is None:
                raise Declined(f"{path.name} has no tensor {prefix + name}")
            if ref.shape != shape or ref.dtype not in ("F32", "F16", "BF16"):
                raise Declined(f"tensor {ref.name} is {ref.dtype} {list(ref.shape)}, not float {list(shape)}")
            with open_tensor(ref) as data:
                if ref.dtype == "BF16":
                    return (data.astype(np.uint32) << 16).view(np.float32).reshape(shape)
                return np.array(data, dtype=np.float32)

        size, inner = int(config["hidden_size"]), int(config["intermediate_size"])

        def linear(name: str, n_in: int, n_out: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
            matrix = np.ascontiguousarray(tensor(f"{name}.weight", (n_out, n_in)).T)
            return matrix, tensor(f"{name}.bias", (n_out,))

        def norm(name: str) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
            return tensor(f"{name}.weight", (size,)), tensor(f"{name}.bias", (size,))

        self.words = tensor("embeddings.word_embeddings.weight", (int(config["vocab_size"]), size))
        self.positions = tensor("embeddings.position_embeddings.weight",
                                (int(config["max_position_embeddings"]), size))
        types = tensor("embeddings.token_type_embeddings.weight", (int(config.get("type_vocab_size", 2)), size))
        self.token_type = types[0]  # one sequence: every token type id is 0
        self.embedding_norm = norm("embeddings.LayerNorm")
        self.layers = [
            _Layer(
                query=linear(f"{p}.attention.self.query", size, size),
                key=linear(f"{p}.attention.self.key", size, size),
                value=linear(f"{p}.attention.self.value", size, size),
                attention_out=linear(f"{p}.attention.output.dense", size, size),
                attention_norm=norm(f"{p}.attention.output.LayerNorm"),
                intermediate=linear(f"{p}.intermediate.dense", size, inner),
                output=linear(f"{p}.output.dense", inner, size),
                output_norm=norm(f"{p}.output.LayerNorm"),
            )
            for p in (f"encoder.layer.{i}" for i in range(int(config["num_hidden_layers"])))
        ]


def _folder(name: str) -> Path:
    if name == DEFAULT_EMBEDDING_MODEL:
        from runtime.models.embedded import default_embedding_model_path

        try:
            return default_embedding_model_path()
        except RtError as exc:
            raise Declined(str(exc)) from None
    path = Path(name)
    if not path.is_dir():
        raise Declined("not a local folder (a hub name is left to sentence-transformers)")
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Declined(f"{path.name} is missing") from None
    except (OSError, ValueError) as exc:
        raise Declined(f"{path.name} is unreadable ({exc})") from None


def _modules(folder: Path, modules: Any) -> tuple[Path, Path]:
    """The Transformer's and the Pooling's folders, if the pipeline is Transformer, Pooling[, Normalize]."""
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise Declined("modules.json is not a list of modules")
    types = [str(m.get("type")) for m in modules]
    if types not in ([_TRANSFORMER, _POOLING], [_TRANSFORMER, _POOLING, _NORMALIZE]):
        raise Declined(f"modules {types} are not Transformer, Pooling[, Normalize]")
    transformer, pooling = (folder / str(m.get("path") or "") for m in modules[:2])
    if folder.resolve() not in (transformer.resolve(), *transformer.resolve().parents):
        raise Declined("a module path leaves the model folder")
    return transformer, pooling


def _check_no_prompts(folder: Path) -> None:
    path = folder / "config_sentence_transformers.json"
    if not path.exists():
        return
    settings = _read_json(path)
    if not isinstance(settings, dict):
        raise Declined(f"{path.name} is not an object")
    prompts = settings.get("prompts") or {}
    if not isinstance(prompts, dict) or any(prompts.values()) or settings.get("default_prompt_name"):
        raise Declined("the model has prompts")
    if settings.get("model_type", "SentenceTransformer") != "SentenceTransformer":
        raise Declined(f"the model is a {settings['model_type']}, not a plain SentenceTransformer")


def _check_config(config: Any) -> _Config:
    if not isinstance(config, dict):
        raise Declined("config.json is not an object")
    architectures = config.get("architectures") or ["BertModel"]
    if config.get("model_type") != "bert" or architectures != ["BertModel"]:
        raise Declined(f"architecture {config.get('model_type')}/{architectures} is not a plain BertModel")
    if config.get("auto_map") or config.get("is_decoder") or config.get("add_cross_attention"):
        raise Declined("config.json asks for custom code, a decoder or cross-attention")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise Declined(f"position embeddings {config['position_embedding_type']!r} are not absolute")
    if config.get("hidden_act") not in _ACTIVATIONS:
        raise Declined(f"activation {config.get('hidden_act')!r} is not one of {_ACTIVATIONS}")
    keys = ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
            "max_position_embeddings", "vocab_size")
    if not all(isinstance(config.get(key), int) and config[key] > 0 for key in keys):
        raise Declined("config.json lacks the encoder's sizes")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise Declined("the hidden size is not a multiple of the head count")
    return _Config(heads=int(config["num_attention_heads"]), eps=float(config.get("layer_norm_eps", 1e-12)),
                   activation=str(config["hidden_act"]))


def _pooling_mode(folder: Path, dimension: int) -> str:
    config = _read_json(folder / "config.json")
    if not isinstance(config, dict) or config.get("word_embedding_dimension", dimension) != dimension:
        raise Declined("the pooling config does not match the encoder")
    modes = [mode for key, mode in _POOLING_MODES.items() if config.get(key)]
    if len(modes) != 1 or any(config.get(key) for key in _OTHER_POOLING):
        raise Declined(f"pooling {config} is not exactly one of mean and CLS")
    return modes[0]


def _tokenizers(folder: Path, max_tokens: int) -> tuple[Any, Any]:
    """The tokenizer for embedding (truncated to ``max_tokens``, no padding) and one for offsets."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise Declined("tokenizer.json is missing (a slow tokenizer)")
    _check_tokenizer_config(folder, json.loads(path.read_text(encoding="utf-8")).get("normalizer"))
    encoder, offsets = Tokenizer.from_file(str(path)), Tokenizer.from_file(str(path))
    encoder.no_padding()
    encoder.enable_truncation(max_length=max_tokens, strategy="longest_first")
    offsets.no_padding()
    offsets.no_truncation()
    return encoder, offsets


def _check_tokenizer_config(folder: Path, normalizer: Any) -> None:
    """transformers rebuilds a BERT normaliser that disagrees with tokenizer_config.json: decline those."""
    path = folder / "tokenizer_config.json"
    settings = _read_json(path) if path.exists() else {}
    if settings.get("tokenizer_class") not in (None, "BertTokenizer", "BertTokenizerFast"):
        raise Declined(f"tokenizer class {settings['tokenizer_class']} is not BERT's")
    if not isinstance(normalizer, dict) or normalizer.get("type") != "BertNormalizer":
        raise Declined("tokenizer.json has no BERT normaliser")
    pairs = (("do_lower_case", "lowercase", True), ("strip_accents", "strip_accents", None),
             ("tokenize_chinese_chars", "handle_chinese_chars", True))
    for setting, field, default in pairs:
        if settings.get(setting, default) != normalizer.get(field, default):
            raise Declined(f"tokenizer_config.json's {setting} disagrees with tokenizer.json")
