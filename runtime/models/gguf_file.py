"""Check a GGUF file before llama.cpp sees it, and describe it.

llama.cpp trusts a GGUF's header: a truncated download or a corrupt count ends in a native
crash or an opaque "failed to load model". :func:`inspect_gguf` reads the header itself with
streamed, bounded reads (never the tensor data, never the whole file), checks every claim the
header makes against the file's real size, and returns a :class:`GGUFInfo` with what ``rt info``
and the memory preflight need. Each failure is its own :mod:`runtime.errors` subclass with the
path, the numbers and a next step.

Layout (GGUF v2/v3, little-endian): magic ``GGUF``, u32 version, u64 tensor count, u64 KV count,
the KV pairs, one info entry per tensor (name, dims, type, offset), padding to
``general.alignment``, then the tensor data.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import gguf

from runtime.errors import (
    ModelFileError,
    ModelNotFoundError,
    TruncatedModelError,
    UnsupportedModelError,
)
from runtime.models import known_archs, tensor_layout

log = logging.getLogger(__name__)

SUPPORTED_VERSIONS = (2, 3)  # llama.cpp dropped v1 (32-bit counts) long ago
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_TENSOR_NAME = 63  # GGML_MAX_NAME is 64 including the NUL; llama.cpp rejects longer
MAX_KEY = 1 << 16  # KV keys are short dotted names; anything longer is corruption
MAX_STRING = 1 << 26  # 64 MiB: far above any real value (chat templates are ~10-100 KB)
SMALL_ARRAY = 1024  # numeric arrays up to this length are kept (per-layer head counts)
# Bounds on the counts a header declares. Each is far above any real model (Gemma 3's vocabulary
# of 262,144 tokens is the largest array we know; DeepSeek V3's ~1,150 tensors, ~50 KV pairs)
# and low enough that a loop or a tuple sized by a corrupt count ends in well under a second.
MAX_KV = 1 << 16
MAX_TENSORS = 1 << 16
MAX_ARRAY = 1 << 21  # elements of one array
MAX_ITEMS = 1 << 22  # strings and nested arrays read one by one, over the whole header
MAX_DIM = 1 << 62  # ggml's dims are int64; a product check alone misses (2**64 - 1, 0)
# Model counts rt sizes things by ({arch}.key -> smallest, largest allowed). block_count's
# bound is llama.cpp's LLAMA_MAX_LAYERS; the others leave orders of magnitude of headroom.
COUNT_BOUNDS: Mapping[str, tuple[int, int]] = {
    gguf.Keys.LLM.BLOCK_COUNT: (1, 512),
    gguf.Keys.LLM.CONTEXT_LENGTH: (0, 1 << 28),
    gguf.Keys.LLM.EMBEDDING_LENGTH: (0, 1 << 20),
    gguf.Keys.LLM.FEED_FORWARD_LENGTH: (0, 1 << 22),
    gguf.Keys.LLM.VOCAB_SIZE: (0, 1 << 24),
    gguf.Keys.Attention.HEAD_COUNT: (0, 1 << 16),
    gguf.Keys.Attention.HEAD_COUNT_KV: (0, 1 << 16),
    gguf.Keys.Attention.KEY_LENGTH: (0, 1 << 16),
    gguf.Keys.Attention.VALUE_LENGTH: (0, 1 << 16),
}
_CHUNK = 1 << 20

_SCALARS: dict[gguf.GGUFValueType, struct.Struct] = {
    gguf.GGUFValueType.UINT8: struct.Struct("<B"),
    gguf.GGUFValueType.INT8: struct.Struct("<b"),
    gguf.GGUFValueType.UINT16: struct.Struct("<H"),
    gguf.GGUFValueType.INT16: struct.Struct("<h"),
    gguf.GGUFValueType.UINT32: struct.Struct("<I"),
    gguf.GGUFValueType.INT32: struct.Struct("<i"),
    gguf.GGUFValueType.FLOAT32: struct.Struct("<f"),
    gguf.GGUFValueType.BOOL: struct.Struct("<?"),
    gguf.GGUFValueType.UINT64: struct.Struct("<Q"),
    gguf.GGUFValueType.INT64: struct.Struct("<q"),
    gguf.GGUFValueType.FLOAT64: struct.Struct("<d"),
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

# What a file that is not a GGUF usually is, by its first bytes: (prefix, description, next step).
_LOOKALIKES: tuple[tuple[bytes, str, str], ...] = (
    (b"version https://git-lfs", "a Git LFS pointer, not the model itself",
     "run `git lfs pull` or download the file again"),
    (b"PK\x03\x04", "a zip archive (a PyTorch checkpoint?)", "convert the checkpoint with `rt convert`"),
    (b"<!DOCTYPE", "an HTML page (a failed download?)", "download the file again"),
    (b"<html", "an HTML page (a failed download?)", "download the file again"),
    (b"{", "a JSON file", "point rt at the .gguf file"),
)


@dataclass(frozen=True)
class GGUFArray:
    """A summary of an array value too large (or too textual) to keep: element type and length."""

    element_type: str
    length: int

    def __str__(self) -> str:
        return f"[{self.length} x {self.element_type}]"


@dataclass(frozen=True)
class GGUFInfo:
    """What rt knows about a GGUF after checking it; see :func:`inspect_gguf`.

    ``metadata`` holds every KV pair: scalars as Python values, small numeric arrays as tuples,
    other arrays as :class:`GGUFArray` summaries. ``tensor_data_bytes`` is the size of the
    tensor data region (what llama.cpp maps), ``n_head_kv`` the largest per-layer value.
    """

    path: Path
    file_size: int
    version: int
    n_tensors: int
    tensor_data_bytes: int
    architecture: str
    name: str | None
    n_params: int
    quantization: str
    context_length: int
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    chat_template: str | None
    metadata: Mapping[str, object] = field(repr=False)

    def arch_value(self, key: str, default: object = None) -> object:
        """The value of ``{arch}.key`` (e.g. ``"attention.sliding_window"``), or ``default``."""
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def n_vocab(self) -> int:
        """Vocabulary size (``{arch}.vocab_size``, else the length of the token list)."""
        value = self.arch_value("vocab_size")
        if isinstance(value, int):
            return value
        tokens = self.metadata.get(gguf.Keys.Tokenizer.LIST)
        return tokens.length if isinstance(tokens, GGUFArray) else len(tokens or ())  # type: ignore[arg-type]

    def kv_heads_per_layer(self) -> tuple[int, ...]:
        """KV head count of each layer (some architectures vary it, or use 0 for non-attention layers)."""
        value = self.arch_value("attention.head_count_kv", self.n_head)
        if isinstance(value, tuple) and len(value) == self.n_layer:
            return tuple(int(v) for v in value)
        return (self.n_head_kv,) * self.n_layer


class _Corrupt(Exception):
    """Internal: the header cannot be parsed; carries the detail for the user's message."""


class _EndOfFile(_Corrupt):
    pass


class _Reader:
    """Bounded little-endian reads through a 1 MiB window; never reads past the real file size."""

    def __init__(self, fh, size: int) -> None:  # type: ignore[no-untyped-def]
        self.fh, self.size = fh, size
        self.buf, self.pos, self.base = b"", 0, 0  # base: file offset of buf[0]
        self.items_left = MAX_ITEMS

    def count_items(self, n: int) -> None:
        """Spend ``n`` of the header's budget of one-by-one reads (see MAX_ITEMS)."""
        self.items_left -= n
        if self.items_left < 0:
            raise _Corrupt(f"the header holds more than {MAX_ITEMS} strings and arrays (at offset {self.offset})")

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def _fill(self, n: int) -> None:
        if self.offset + n > self.size:
            raise _EndOfFile(f"needs {n} bytes at offset {self.offset}, but the file ends at {self.size}")
        rest = self.buf[self.pos :]
        self.base, self.pos = self.offset, 0
        self.buf = rest + self.fh.read(max(n, _CHUNK) - len(rest))
        if len(self.buf) < n:  # the file shrank while we read it
            raise _EndOfFile(f"needs {n} bytes at offset {self.offset}, but the file ends early")

    def read(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            self._fill(n)
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data

    def unpack(self, fmt: struct.Struct) -> object:
        if self.pos + fmt.size > len(self.buf):
            self._fill(fmt.size)
        (value,) = fmt.unpack_from(self.buf, self.pos)
        self.pos += fmt.size
        return value

    def u32(self) -> int:
        return int(self.unpack(_U32))  # type: ignore[call-overload]

    def u64(self) -> int:
        return int(self.unpack(_U64))  # type: ignore[call-overload]

    def skip(self, n: int) -> None:
        if self.pos + n <= len(self.buf):
            self.pos += n
            return
        target = self.offset + n
        if target > self.size:
            raise _EndOfFile(f"a value of {n} bytes at offset {self.offset} runs past the end of the file "
                             f"({self.size})")
        self.fh.seek(target)
        self.buf, self.pos, self.base = b"", 0, target

    def strings(self, count: int) -> list[bytes]:
        """``count`` strings in a row: a local loop over the window (a vocabulary is 50k-260k strings,
        ~4x faster than :meth:`string` each), with :meth:`string` where one crosses the window's end."""
        unpack, buf, pos, size = _U64.unpack_from, self.buf, self.pos, len(self.buf)
        out: list[bytes] = []
        append = out.append
        for _ in range(count):
            if pos + 8 <= size:
                end = pos + 8 + unpack(buf, pos)[0]
                if end <= size:
                    append(buf[pos + 8 : end])
                    pos = end
                    continue
            self.pos = pos
            append(self.string())
            buf, pos, size = self.buf, self.pos, len(self.buf)
        self.pos = pos
        return out

    def string(self, limit: int = MAX_STRING, what: str = "a string") -> bytes:
        n = self.u64()
        if n > limit:
            raise _Corrupt(f"{what} of {n} bytes at offset {self.offset - 8} is implausible")
        return self.read(n)


def _value_type(raw: int) -> gguf.GGUFValueType:
    try:
        return gguf.GGUFValueType(raw)
    except ValueError:
        raise _Corrupt(f"unknown value type {raw}") from None


def _read_array(r: _Reader, depth: int = 0) -> object:
    etype = _value_type(r.u32())
    if etype == gguf.GGUFValueType.ARRAY and depth >= 2:  # a corrupt file could nest until the stack breaks
        raise _Corrupt(f"arrays nested {depth + 2} deep at offset {r.offset}")
    count = r.u64()
    if count > MAX_ARRAY:
        raise _Corrupt(f"an array of {count} values at offset {r.offset - 8} is implausible (at most {MAX_ARRAY})")
    min_size = 8 if etype == gguf.GGUFValueType.STRING else _SCALARS[etype].size if etype in _SCALARS else 12
    if count * min_size > r.size - r.offset:
        raise _EndOfFile(f"an array of {count} {etype.name.lower()} values needs at least {count * min_size} "
                         f"bytes, but the file ends {r.size - r.offset} bytes later")
    if etype in _SCALARS and count <= SMALL_ARRAY:
        return tuple(r.unpack(_SCALARS[etype]) for _ in range(count))
    if etype in _SCALARS:
        r.skip(count * _SCALARS[etype].size)
    elif etype == gguf.GGUFValueType.STRING:
        r.count_items(count)
        r.strings(count)
    else:
        r.count_items(count)
        for _ in range(count):  # arrays of arrays: legal, rare
            _read_array(r, depth + 1)
    return GGUFArray(etype.name.lower(), count)


def _read_tokens(path: Path, r: _Reader) -> GGUFArray:
    """The token list, checked for duplicates as llama.cpp's vocabulary loader asserts (it aborts on one)."""
    etype = _value_type(r.u32())
    count = r.u64()
    if etype != gguf.GGUFValueType.STRING:
        raise _Corrupt(f"the token list is an array of {etype.name.lower()}, not of strings")
    if count > MAX_ARRAY:
        raise _Corrupt(f"a token list of {count} strings at offset {r.offset - 8} is implausible")
    if count * 8 > r.size - r.offset:
        raise _EndOfFile(f"a token list of {count} strings needs at least {count * 8} bytes, but the file "
                         f"ends {r.size - r.offset} bytes later")
    r.count_items(count)
    # llama.cpp renames an empty token to "[EMPTY_<id>]" before it checks for duplicates
    tokens = [token or f"[EMPTY_{i}]".encode() for i, token in enumerate(r.strings(count))]
    if len(set(tokens)) == len(tokens):
        return GGUFArray("string", count)
    seen: dict[bytes, int] = {}
    for token_id, token in enumerate(tokens):
        first = seen.setdefault(token, token_id)
        if first != token_id:
            raise ModelFileError(
                f"{path}: token {_shown(token.decode('utf-8', errors='replace'))} appears twice in the "
                f"vocabulary (ids {first} and {token_id}); llama.cpp cannot load it", path=path,
                hint="the file is corrupt; convert or download it again",
            )
    raise AssertionError("unreachable: a duplicate was counted")


def _shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: a corrupt value must not flood the one-line error."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_value(r: _Reader, vtype: gguf.GGUFValueType) -> object:
    if vtype == gguf.GGUFValueType.STRING:
        return r.string().decode("utf-8", errors="replace")
    if vtype == gguf.GGUFValueType.ARRAY:
        return _read_array(r)
    return r.unpack(_SCALARS[vtype])


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    type: gguf.GGMLQuantizationType
    offset: int
    n_elements: int
    n_bytes: int


def _read_tensor_info(r: _Reader) -> _Tensor:
    raw_name = r.string(limit=MAX_TENSOR_NAME, what="a tensor name")
    name = raw_name.decode("utf-8", errors="replace")
    n_dims = r.u32()
    if n_dims > MAX_DIMS:
        raise _Corrupt(f"tensor {name!r} claims {n_dims} dimensions (at most {MAX_DIMS})")
    shape = tuple(r.u64() for _ in range(n_dims))
    if any(dim >= MAX_DIM for dim in shape):
        raise _Corrupt(f"tensor {name!r} claims shape {shape}, which is implausible")
    raw_type, offset = r.u32(), r.u64()
    try:
        qtype = gguf.GGMLQuantizationType(raw_type)
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise UnsupportedModelError(
            f"tensor {name!r} has type id {raw_type}, which this version of rt does not know",
            hint="update rt (pip install -U gguf llama-cpp-python), or convert the model again",
        ) from None
    n_elements = 1
    for dim in shape:
        n_elements *= dim
    if n_elements >= 1 << 62:
        raise _Corrupt(f"tensor {name!r} claims shape {shape}, which is implausible")
    if shape and shape[0] % block:
        raise _Corrupt(f"tensor {name!r} has a row of {shape[0]} values, "
                       f"not a multiple of {qtype.name}'s block of {block}")
    return _Tensor(name, shape, qtype, offset, n_elements, n_elements // block * type_size)


def _check_opening(path: Path) -> int:
    if not path.exists():
        raise ModelNotFoundError(f"model file {path} does not exist", hint="check the path, or see `rt models`")
    if path.is_dir():
        raise ModelFileError(
            f"{path} is a folder, not a GGUF file", path=path,
            hint="point at the .gguf file inside it, or convert a checkpoint folder with `rt convert`",
        )
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"{path} is empty (0 bytes)", path=path,
                             hint="the download or copy failed; get the file again")
    return size


def _check_magic(path: Path, head: bytes, size: int) -> int:
    if head[:4] != gguf.GGUF_MAGIC.to_bytes(4, "little"):
        shown = head[:8].hex()
        for prefix, what, step in _LOOKALIKES:
            if head.startswith(prefix):
                raise ModelFileError(f"{path} is not a GGUF file: it looks like {what}", path=path, hint=step)
        raise ModelFileError(
            f"{path} is not a GGUF file (it starts with 0x{shown}, a GGUF starts with 'GGUF')",
            path=path, hint="check that this is the model file, or download it again",
        )
    if size < 24:
        raise TruncatedModelError(f"{path} ends after {size} bytes, inside the GGUF header", path=path,
                                  hint="the download was interrupted; download it again")
    version = int.from_bytes(head[4:8], "little")
    if version not in SUPPORTED_VERSIONS:
        if int.from_bytes(head[4:8], "big") in SUPPORTED_VERSIONS:
            detail, step = "is a big-endian GGUF", "use a little-endian build of the model"
        elif version < min(SUPPORTED_VERSIONS):
            detail = f"is GGUF version {version}, too old for llama.cpp"
            step = "convert the model again with `rt convert`"
        else:
            detail, step = f"is GGUF version {version}, newer than this rt reads", "update rt and llama-cpp-python"
        raise ModelFileError(f"{path} {detail} (supported: {', '.join(map(str, SUPPORTED_VERSIONS))})",
                             path=path, hint=step)
    return version


def inspect_gguf(path: str | Path) -> GGUFInfo:
    """Validate a GGUF file's header against the file and describe the model in it.

    Reads only the header (KV metadata and tensor table, a few MB at most) with bounded reads,
    so a corrupt count cannot make it allocate or read without limit. Raises
    :class:`ModelNotFoundError` (no such file), :class:`ModelFileError` (a folder, unreadable,
    empty, not a GGUF, corrupt header), :class:`TruncatedModelError` (tensor data past the end
    of the file) or :class:`UnsupportedModelError` (architecture or tensor type the bundled
    llama.cpp does not know).
    """
    path = Path(path).expanduser()
    size = _check_opening(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}", path=path,
                             hint="check the file's permissions") from exc
    with fh:
        version = _check_magic(path, fh.read(64), size)
        reader = _Reader(fh, size)
        reader.skip(8)
        metadata, tensors, data_start = _read_header(path, reader)
    return _describe(path, size, version, metadata, tensors, data_start)


def _read_header(path: Path, r: _Reader) -> tuple[dict[str, object], list[_Tensor], int]:
    n_tensors, n_kv = r.u64(), r.u64()
    # Smallest possible entries: a KV pair is 8 (key length) + 4 (type) + 1 (a u8) bytes, a tensor entry 24.
    if n_kv * 13 + n_tensors * 24 > r.size - r.offset:
        raise ModelFileError(
            f"{path}: the header says {n_tensors} tensors and {n_kv} metadata entries, more than a file of "
            f"{r.size} bytes can hold", path=path, hint="the file is corrupt; download it again",
        )
    for field_name, count, limit in (("tensor count", n_tensors, MAX_TENSORS), ("metadata count", n_kv, MAX_KV)):
        if count > limit:
            raise ModelFileError(f"{path}: the header's {field_name} is {count}, implausibly many (at most {limit})",
                                 path=path, hint="the file is corrupt; download it again")
    metadata: dict[str, object] = {}
    for index in range(n_kv):
        key = ""
        try:
            key = r.string(limit=MAX_KEY, what="a key").decode("utf-8", errors="replace")
            if key in metadata:  # llama.cpp's gguf_init refuses duplicate keys too
                raise ModelFileError(f"{path}: metadata key {_shown(key)} appears twice in the header",
                                     path=path, hint="the file is corrupt; convert or download it again")
            vtype = _value_type(r.u32())
            if key == gguf.Keys.Tokenizer.LIST and vtype == gguf.GGUFValueType.ARRAY:
                metadata[key] = _read_tokens(path, r)
            else:
                metadata[key] = _read_value(r, vtype)
        except _Corrupt as exc:
            where = f"metadata entry {index + 1} of {n_kv}" + (f" ({_shown(key)[1:-1]})" if key else "")
            raise _header_error(path, where, exc) from None
    tensors: list[_Tensor] = []
    seen: set[str] = set()
    for index in range(n_tensors):
        try:
            tensor = _read_tensor_info(r)
        except _EndOfFile:
            raise ModelFileError(f"{path}: the header says {n_tensors} tensors, but the file ends after {index}",
                                 path=path, hint="the file is corrupt or truncated; download it again") from None
        except _Corrupt as exc:
            raise ModelFileError(
                f"{path}: the header says {n_tensors} tensors, but only {index} tensor entries could be read "
                f"(entry {index + 1}: {exc})", path=path, hint="the file is corrupt; download it again",
            ) from None
        if tensor.name in seen:
            raise ModelFileError(f"{path}: tensor {tensor.name!r} appears twice in the header", path=path,
                                 hint="the file is corrupt; download it again")
        seen.add(tensor.name)
        tensors.append(tensor)
    alignment = metadata.get(gguf.Keys.General.ALIGNMENT, gguf.GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise ModelFileError(f"{path}: general.alignment is {_shown(alignment)}, not a power of two", path=path,
                             hint="the file is corrupt; convert or download it again")
    data_start = -(-r.offset // alignment) * alignment
    _check_tensor_data(path, r.size, tensors, data_start, alignment)
    return metadata, tensors, data_start


def _header_error(path: Path, where: str, exc: _Corrupt) -> ModelFileError:
    return ModelFileError(f"{path}: {where} is unreadable: {exc}", path=path,
                          hint="the file is corrupt or truncated; download it again")


def _check_tensor_data(path: Path, size: int, tensors: list[_Tensor], data_start: int, alignment: int) -> None:
    if not tensors:
        raise ModelFileError(f"{path} has no tensors (a vocabulary-only GGUF?)", path=path,
                             hint="use a complete model file")
    for tensor in tensors:
        if tensor.offset % alignment:
            raise ModelFileError(
                f"{path}: tensor {tensor.name!r} starts at offset {tensor.offset}, not a multiple of the "
                f"alignment {alignment}", path=path, hint="the file is corrupt; download it again",
            )
    data_end = data_start + max(t.offset + t.n_bytes for t in tensors)
    if data_end > size:
        cut = sum(1 for t in tensors if data_start + t.offset + t.n_bytes > size)
        raise TruncatedModelError(
            f"{path}: tensor data ends at {data_end} bytes but the file has {size} "
            f"({100 * size / data_end:.0f}%; {cut} of {len(tensors)} tensors are cut off)",
            path=path, hint="the download was interrupted; download it again",
        )
    _check_data_layout(path, tensors, alignment)


def _check_data_layout(path: Path, tensors: list[_Tensor], alignment: int) -> None:
    """Each tensor's data must start where the one before it ends (padded to the alignment).

    llama.cpp's gguf reader insists on it ("tensor 'x' has offset N, expected M"): data that
    overlaps another tensor's, or a gap left by a type whose size does not match the data, is
    refused at load. Checking it here makes ``rt info`` and the load agree.
    """
    expected, before = 0, None
    for tensor in tensors:
        if tensor.offset != expected:
            if before is None:
                detail = f"the first tensor, {tensor.name!r}, starts at data offset {tensor.offset}, not 0"
            else:
                ends = before.offset + before.n_bytes
                relation = "overlaps" if tensor.offset < ends else "does not follow"
                detail = (f"tensor {tensor.name!r} at data offset {tensor.offset} {relation} the one before it "
                          f"({before.name!r}, {before.type.name} {'x'.join(map(str, before.shape))}: "
                          f"{before.n_bytes} bytes ending at {ends}, so the next starts at {expected})")
            raise ModelFileError(
                f"{path}: {detail}; llama.cpp cannot load it", path=path,
                hint="the file is corrupt (a tensor type or shape that does not match its data); "
                     "convert or download it again",
            )
        expected = tensor.offset + -(-tensor.n_bytes // alignment) * alignment
        before = tensor


def _describe(path: Path, size: int, version: int, metadata: dict[str, object],
              tensors: list[_Tensor], data_start: int) -> GGUFInfo:
    arch = metadata.get(gguf.Keys.General.ARCHITECTURE)
    if not isinstance(arch, str) or not arch:
        raise ModelFileError(f"{path} has no general.architecture in its metadata", path=path,
                             hint="the file was not written by a GGUF converter; convert the model again")
    if len(arch) > 64 or not arch.isprintable():
        raise ModelFileError(f"{path}: general.architecture is {_shown(arch)}, not an architecture name",
                             path=path, hint="the file is corrupt; convert or download it again")
    if arch == "clip":
        raise UnsupportedModelError(f"{path} is a vision projector (mmproj), not a language model",
                                    hint="point rt at the model's main GGUF file")
    known_archs.check_supported(arch, path)
    for key, (low, high) in COUNT_BOUNDS.items():
        _check_count(path, key.format(arch=arch), metadata, low, high)

    _check_shapes(path, arch, metadata, tensors)

    def arch_int(key: str, default: int = 0) -> int:
        value = metadata.get(key.format(arch=arch), default)
        if isinstance(value, tuple):  # per-layer values: the largest one bounds the memory
            value = max(value, default=default)
        return int(value) if isinstance(value, int) else default

    n_embd = arch_int(gguf.Keys.LLM.EMBEDDING_LENGTH)
    n_head = arch_int(gguf.Keys.Attention.HEAD_COUNT)
    head_dim = n_embd // n_head if n_head else 0
    head_dim_k = arch_int(gguf.Keys.Attention.KEY_LENGTH, head_dim)
    template = metadata.get(gguf.Keys.Tokenizer.CHAT_TEMPLATE)
    name = metadata.get(gguf.Keys.General.NAME)
    return GGUFInfo(
        path=path, file_size=size, version=version, n_tensors=len(tensors),
        tensor_data_bytes=size - data_start, architecture=arch,
        name=name if isinstance(name, str) else None,
        n_params=sum(t.n_elements for t in tensors),
        quantization=_quantization(metadata, tensors),
        context_length=arch_int(gguf.Keys.LLM.CONTEXT_LENGTH),
        n_layer=arch_int(gguf.Keys.LLM.BLOCK_COUNT), n_embd=n_embd, n_head=n_head,
        n_head_kv=arch_int(gguf.Keys.Attention.HEAD_COUNT_KV, n_head),
        head_dim_k=head_dim_k, head_dim_v=arch_int(gguf.Keys.Attention.VALUE_LENGTH, head_dim_k),
        chat_template=template if isinstance(template, str) and template.strip() else None,
        metadata=metadata,  # a plain dict so that GGUFInfo pickles (the model runs in a child process)
    )


def _check_shapes(path: Path, arch: str, metadata: Mapping[str, object], tensors: list[_Tensor]) -> None:
    """The tensors' shapes against the header's counts, as llama.cpp's loader checks them."""

    def count(key: str) -> int | tuple[int, ...] | None:
        value = metadata.get(key.format(arch=arch))
        return value if isinstance(value, (int, tuple)) and not isinstance(value, bool) else None  # type: ignore[return-value]

    n_head = count(gguf.Keys.Attention.HEAD_COUNT)
    if n_head is not None:
        tensor = tensor_layout.zero_head_count(n_head, [t.name for t in tensors])
        if tensor is not None:
            raise ModelFileError(
                f"{path}: {gguf.Keys.Attention.HEAD_COUNT.format(arch=arch)} is 0 where the model has "
                f"attention ({tensor!r}); llama.cpp cannot load it", path=path,
                hint="the file is corrupt; convert or download it again",
            )
    tokens = metadata.get(gguf.Keys.Tokenizer.LIST)
    n_embd = count(gguf.Keys.LLM.EMBEDDING_LENGTH)
    n_head_kv = count(gguf.Keys.Attention.HEAD_COUNT_KV)
    head_k, head_v = count(gguf.Keys.Attention.KEY_LENGTH), count(gguf.Keys.Attention.VALUE_LENGTH)
    head_k = head_k if isinstance(head_k, int) else None
    counts = tensor_layout.Counts(
        n_embd=n_embd if isinstance(n_embd, int) else 0,
        n_vocab=tokens.length if isinstance(tokens, GGUFArray) else None,
        n_head=n_head if n_head is not None else 0,
        n_head_kv=n_head_kv if n_head_kv is not None else (n_head if n_head is not None else 0),
        head_k=head_k,
        head_v=head_v if isinstance(head_v, int) else head_k,
    )
    wrong = tensor_layout.shape_mismatch(arch, counts, {t.name: t.shape for t in tensors})
    if wrong is not None:
        name, expected, found = wrong
        raise ModelFileError(
            f"{path}: tensor {name!r} has shape {_dims(found)}, but the header's counts make it {_dims(expected)} "
            f"for {arch}; llama.cpp cannot load it", path=path,
            hint="the file is corrupt or was converted wrongly; convert or download it again",
        )


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "a scalar"


def _check_count(path: Path, key: str, metadata: Mapping[str, object], low: int, high: int) -> None:
    """A count rt sizes things by must be a whole number (or one per layer) within ``[low, high]``.

    block_count is required (llama.cpp aborts on 0); the other counts may be absent.
    """
    value = metadata.get(key)
    if value is None:
        if low > 0:
            raise ModelFileError(f"{path} has no {key} in its metadata", path=path,
                                 hint="the file was not written by a GGUF converter; convert the model again")
        return
    values = value if isinstance(value, tuple) else (value,)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ModelFileError(f"{path}: {key} is {_shown(value)}, not a whole number", path=path,
                             hint="the file is corrupt; convert or download it again")
    for v in values:
        if not low <= v <= high:  # type: ignore[operator]
            raise ModelFileError(
                f"{path}: {key} is {v}, outside the plausible range {low} to {high}", path=path,
                hint="the file is corrupt; convert or download it again",
            )


def _quantization(metadata: Mapping[str, object], tensors: list[_Tensor]) -> str:
    """``general.file_type`` by name (``MOSTLY_Q4_K_M`` -> ``Q4_K_M``), else the type holding most bytes."""
    file_type = metadata.get(gguf.Keys.General.FILE_TYPE)
    if isinstance(file_type, int):
        try:  # the GUESSED flag (1024) marks a type llama.cpp inferred; the low bits still name it
            name = gguf.LlamaFileType(file_type & ~gguf.LlamaFileType.GUESSED).name
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            log.debug("unknown general.file_type %s; naming the dominant tensor type", file_type)
    by_bytes: Counter[str] = Counter()
    for tensor in tensors:
        by_bytes[tensor.type.name] += tensor.n_bytes
    return by_bytes.most_common(1)[0][0]
