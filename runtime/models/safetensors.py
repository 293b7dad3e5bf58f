"""Read safetensors checkpoints one tensor at a time, without loading a shard.

A safetensors file is an 8-byte little-endian header length, a JSON header (name -> dtype,
shape, data offsets relative to the end of the header, plus an optional ``__metadata__``),
then the raw tensor bytes. We parse and validate the header ourselves so a corrupt file gets
a clear message instead of a stack trace, and we map only the byte range of the tensor being
converted, so resident memory stays near one tensor whatever the shard size.

Mappings are read-only (``mmap.ACCESS_READ``): gguf's own reader maps files copy-on-write,
which on Windows takes commit charge for the whole mapping, as if the file were loaded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import mmap
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.errors import ConvertError

logger = logging.getLogger(__name__)

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"

# Bytes per element for every dtype the format defines; the float ones are those we convert.
DTYPE_SIZES: Mapping[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
# bf16 has no numpy dtype: it is read as uint16 and converted (or copied) bit for bit.
NUMPY_DTYPES: Mapping[str, np.dtype] = {
    "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
}
_MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's own limit
MAX_DIMS = 16  # real tensors have at most 5; a bound keeps math.prod of a corrupt shape instant


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor lives: file, absolute byte offset and length, dtype and shape."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    path: Path
    offset: int
    nbytes: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


def _short(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: a corrupt header must not flood the one-line error."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bad(path: Path, what: str) -> ConvertError:
    return ConvertError(
        f"{path.name} is not a valid safetensors file: {what}",
        hint="the file is corrupt or incomplete; download it again",
    )


def read_header(path: Path) -> dict[str, TensorRef]:
    """Parse and validate ``path``'s header; return its tensors by name.

    Checks the header length, the JSON, every dtype, that each tensor's byte length matches
    its shape and that all data offsets lie inside the file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise _bad(path, f"the file is only {size} bytes long")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > min(_MAX_HEADER, size - 8):
                raise _bad(path, f"header length {header_len} exceeds the file size {size}")
            raw = fh.read(header_len)
    except FileNotFoundError:
        raise ConvertError(f"shard {path.name} is missing from {path.parent}",
                           hint="download the checkpoint again") from None
    if not raw.rstrip(b" ").endswith(b"}"):  # an object padded with spaces; checked before decoding 100 MB
        raise _bad(path, "the header is not a JSON object (a wrong header length?)")
    try:
        header = json.loads(raw)
    except RecursionError:  # json recurses per nesting level: '[' * 100_000 exhausts the stack
        raise _bad(path, "the header's JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of more than 4,300 digits
        raise _bad(path, f"the header is not valid JSON ({str(exc)[:100]})") from None
    if not isinstance(header, dict):
        raise _bad(path, "the header is not a JSON object")
    data_start = 8 + header_len
    return {
        name: _tensor_ref(path, name, entry, data_start, size)
        for name, entry in header.items()
        if name != "__metadata__"
    }


def _tensor_ref(path: Path, name: str, entry: object, data_start: int, size: int) -> TensorRef:
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise _bad(path, f"tensor {_short(name)} lacks dtype, shape or data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise _bad(path, f"tensor {_short(name)} has unknown dtype {_short(dtype)}")
    if not (isinstance(shape, list) and len(shape) <= MAX_DIMS and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise _bad(path, f"tensor {_short(name)} has an invalid shape {_short(shape)}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise _bad(path, f"tensor {_short(name)} has invalid data_offsets {_short(offsets)}")
    begin, end = offsets
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if not 0 <= begin <= end or end - begin != expected:
        raise _bad(path, f"tensor {_short(name)} spans {end - begin} bytes, its shape needs {expected}")
    if data_start + end > size:
        raise _bad(
            path, f"tensor {_short(name)} ends at byte {data_start + end}, past the end of the "
            f"{size}-byte file (truncated download?)",
        )
    return TensorRef(name, dtype, tuple(shape), path, data_start + begin, expected)


def _index_shards(folder: Path) -> dict[str, list[str]]:
    """Shard file -> the tensor names the index assigns to it."""
    index_path = folder / INDEX_NAME
    try:
        weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise ConvertError(f"{INDEX_NAME} in {folder} is unreadable ({exc})",
                           hint="download the checkpoint's index again") from None
    shards: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        shards.setdefault(str(shard), []).append(name)
    return shards


class Checkpoint:
    """The tensors of a safetensors checkpoint folder (one file, or shards with an index)."""

    def __init__(self, tensors: Mapping[str, TensorRef]) -> None:
        self.tensors: dict[str, TensorRef] = dict(tensors)

    @classmethod
    def open(cls, folder: Path) -> Checkpoint:
        """Read and cross-check every header in ``folder`` (no tensor data is read)."""
        folder = Path(folder)
        if (folder / INDEX_NAME).exists():
            return cls(_read_indexed(folder))
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise ConvertError(f"no *.safetensors files in {folder}")
        # Mistral's repos carry both HF shards and consolidated.safetensors (the same weights
        # under Mistral's own names); the HF files are the ones to read.
        hf_files = [f for f in files if not f.name.startswith("consolidated")]
        if hf_files and len(hf_files) < len(files):
            logger.info("ignoring %s (Mistral's native layout)", ", ".join(
                f.name for f in files if f not in hf_files))
            files = hf_files
        tensors: dict[str, TensorRef] = {}
        for file in files:
            for name, ref in read_header(file).items():
                if name in tensors:
                    raise ConvertError(f"tensor {name!r} appears in both {tensors[name].path.name} "
                                       f"and {file.name}", hint="remove the stray file")
                tensors[name] = ref
        return cls(tensors)

    @property
    def total_bytes(self) -> int:
        return sum(ref.nbytes for ref in self.tensors.values())

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def __getitem__(self, name: str) -> TensorRef:
        return self.tensors[name]


def _read_indexed(folder: Path) -> dict[str, TensorRef]:
    shards = _index_shards(folder)
    missing = [shard for shard in shards if not (folder / shard).is_file()]
    if missing:
        raise ConvertError(
            f"{len(missing)} of {len(shards)} shards named in {INDEX_NAME} are missing: "
            f"{', '.join(sorted(missing))}",
            hint="download the missing shards (an interrupted download?)",
        )
    tensors: dict[str, TensorRef] = {}
    for shard, names in shards.items():
        header = read_header(folder / shard)
        absent = [name for name in names if name not in header]
        if absent:
            raise ConvertError(
                f"{INDEX_NAME} does not match {shard}: {len(absent)} tensors it lists are not in "
                f"the shard (first: {absent[0]!r})",
                hint="the index and shards come from different versions; download them again",
            )
        for name in names:
            tensors[name] = header[name]
        unlisted = len(header) - len(names)
        if unlisted:
            logger.warning("%s holds %d tensors that %s does not list; they are skipped",
                           shard, unlisted, INDEX_NAME)
    return tensors


@contextlib.contextmanager
def open_tensor(ref: TensorRef) -> Iterator[np.ndarray]:
    """Map just ``ref``'s bytes read-only and yield them as a numpy array of its shape.

    The array is a view of the mapping: it is valid only inside the ``with`` block, and it is
    read-only (transform into a new array; never write into it). BF16 comes out as uint16.
    """
    dtype = NUMPY_DTYPES.get(ref.dtype)
    if dtype is None:
        raise ConvertError(
            f"tensor {ref.name!r} is {ref.dtype}; rt converts F32, F16 and BF16 weights",
            hint="dequantize the checkpoint to float first",
        )
    if ref.nbytes == 0:
        yield np.empty(ref.shape, dtype=dtype)
        return
    start = ref.offset - ref.offset % mmap.ALLOCATIONGRANULARITY
    with open(ref.path, "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), ref.offset + ref.nbytes - start,
                           access=mmap.ACCESS_READ, offset=start)
    array = np.frombuffer(mapped, dtype=dtype, count=ref.n_elements, offset=ref.offset - start)
    try:
        yield array.reshape(ref.shape)
    finally:
        del array
        # Unmap now if nobody kept a view; otherwise the last view's release unmaps it.
        with contextlib.suppress(BufferError):
            mapped.close()
