"""Safetensors -> quantized GGUF in one pass: no intermediate file, same bytes as llama.cpp.

Each tensor is read from its shard (a read-only mapping), cut into chunks of rows, every chunk
turned into float32 (bf16 and f16 widen exactly) and quantized by ggml's ``ggml_quantize_chunk``
(convert/ggml_quant.py) on a pool of threads, into one buffer holding the tensor's quantized
bytes, which is then appended to the GGUF. The tensor types follow llama.cpp's mixture rules
(convert/quant_rules.py), the tensors go in llama.cpp's order and the metadata ends with the
quantization version and file type, as ``llama_model_quantize`` writes them: the file is the
one the two-step path (float GGUF, then llama.cpp's quantizer) would produce.

The quantized bytes of a tensor are written by a second thread while the next tensor is
quantized, so the cores do not wait for the disk.

Memory: the quantized bytes of two tensors (a 7B's largest, output.weight in Q6_K: 107 MB),
plus one chunk of float32 rows per thread (``CHUNK_BYTES`` each), plus the mapped pages of the
tensor being read (at most its size in the checkpoint: 262 MB for a 7B's embeddings in bf16;
a q/k tensor that is permuted is copied once in its source dtype, 32 MB for a 7B).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import gguf
import numpy as np

from convert.ggml_quant import Ggml
from convert.writer import FLOAT_TYPES, PlannedTensor, bf16_to_f32, tensor_data
from runtime.errors import ConvertError
from runtime.models.safetensors import open_tensor

logger = logging.getLogger(__name__)

# float32 bytes one thread quantizes at a time: big enough that a call takes milliseconds,
# small enough that 16 threads hold 128 MB.
CHUNK_BYTES = 8 * 1024 * 1024


def nbytes_of(ggml_type: gguf.GGMLQuantizationType, shape: Sequence[int]) -> int:
    """Bytes of a tensor of ``shape`` (numpy order) stored as ``ggml_type``."""
    block, size = gguf.GGML_QUANT_SIZES[ggml_type]
    return math.prod(shape[:-1]) * (shape[-1] // block) * size if shape else size


def _to_f32(rows: np.ndarray, src_dtype: str) -> np.ndarray:
    if src_dtype == "BF16":
        return bf16_to_f32(rows)
    return np.ascontiguousarray(rows, dtype=np.float32)


class _Quantizer:
    """Quantizes one tensor's rows into a byte buffer, chunk by chunk, on a thread pool."""

    def __init__(self, ggml: Ggml, threads: int) -> None:
        self.ggml = ggml
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rt-quantize")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def quantize(self, name: str, values: np.ndarray, src_dtype: str,
                 ggml_type: gguf.GGMLQuantizationType) -> np.ndarray:
        n_cols = values.shape[-1]
        matrix = values.reshape(-1, n_cols)
        row_size = self.ggml.row_size(ggml_type, n_cols)
        out = np.empty(matrix.shape[0] * row_size, dtype=np.uint8)
        step = max(1, CHUNK_BYTES // (4 * n_cols))

        def work(first: int) -> None:
            last = min(first + step, matrix.shape[0])
            rows = _to_f32(matrix[first:last], src_dtype)
            try:
                self.ggml.quantize_rows(ggml_type, rows, out[first * row_size:last * row_size])
            except ConvertError as exc:
                raise ConvertError(f"{name}: {exc}", hint=exc.hint) from None

        for _ in self.pool.map(work, range(0, matrix.shape[0], step)):
            pass
        return out


def _tensor_bytes(planned: PlannedTensor, stored_type: gguf.GGMLQuantizationType,
                  quantizer: _Quantizer) -> Iterator[np.ndarray]:
    """Yield ``planned``'s bytes in its output type (the source mapping lives meanwhile)."""
    if planned.out_type in FLOAT_TYPES.values() and planned.out_type in (stored_type, gguf.GGMLQuantizationType.F32):
        # What the quantizer copies unchanged from the float intermediate: write it as that is.
        yield from tensor_data(planned)
        return
    if planned.data is not None:
        yield quantizer.quantize(planned.name, planned.data.astype(np.float32), "F32", planned.out_type)
        return
    assert planned.source is not None
    with open_tensor(planned.source) as array:
        if planned.transform is not None:
            array = planned.transform(array)
        yield quantizer.quantize(planned.name, array, planned.source.dtype, planned.out_type)


def write_direct(
    path: Path,
    arch_name: str,
    add_metadata: Callable[[gguf.GGUFWriter], None],
    tensors: Sequence[PlannedTensor],
    stored_type: gguf.GGMLQuantizationType,
    ggml: Ggml,
    *,
    threads: int | None = None,
    on_tensor: Callable[[str, int, int], None] | None = None,
) -> None:
    """Write the quantized GGUF ``path``: metadata from ``add_metadata``, then ``tensors``.

    ``tensors`` come in writing order with their final types (``out_type``). Those whose type is
    ``stored_type`` (the float type of the two-step path's intermediate) or F32 are written as
    the float writer writes them; the others are quantized by ggml on ``threads`` threads (all
    cores by default). ``on_tensor(name, done, total)`` is called after each tensor.
    """
    for ggml_type in {t.out_type for t in tensors} - set(FLOAT_TYPES.values()):
        ggml.prepare(ggml_type)
    writer = gguf.GGUFWriter(path, arch_name)
    quantizer = _Quantizer(ggml, threads or os.cpu_count() or 1)
    disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rt-write")
    pending: Future[None] | None = None
    try:
        add_metadata(writer)
        for planned in tensors:
            writer.add_tensor_info(planned.name, planned.shape, np.dtype(np.float32),
                                   nbytes_of(planned.out_type, planned.shape), raw_dtype=planned.out_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for done, planned in enumerate(tensors, 1):
            for data in _tensor_bytes(planned, stored_type, quantizer):
                if pending is not None:
                    pending.result()
                    pending = None
                if planned.out_type in FLOAT_TYPES.values():  # may view the source mapping
                    writer.write_tensor_data(data)
                else:  # a buffer of its own: written while the next tensor is quantized
                    pending = disk.submit(writer.write_tensor_data, data)
                del data
            logger.debug("[%d/%d] %s -> %s", done, len(tensors), planned.name, planned.out_type.name)
            if on_tensor is not None:
                on_tensor(planned.name, done, len(tensors))
        if pending is not None:
            pending.result()
    finally:
        quantizer.close()
        disk.shutdown(wait=True)
        writer.close()
