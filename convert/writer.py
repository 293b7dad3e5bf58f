"""Stream a checkpoint into a GGUF file, one tensor in memory at a time.

gguf.GGUFWriter's streaming mode: every tensor's name, shape and type is declared first
(``add_tensor_info``), the header, metadata and tensor table are written, then each tensor's
data is written in the declared order (``write_tensor_data``). Only the tensor being written
is ever in memory, so peak memory is about the largest tensor whatever the model size.

Output types are F32, F16 and BF16. bf16 goes to BF16 as a byte copy (numpy has no bf16; the
raw uint16 words are written as they are); a tensor that needs no change at all is copied
file to file by the kernel, which keeps conversion close to the speed of ``cp``. 1-D tensors
(norms, biases) always stay F32, as llama.cpp's kernels expect.
"""

from __future__ import annotations

import errno
import io
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import gguf
import numpy as np

from runtime.errors import ConvertError
from runtime.models.safetensors import TensorRef, open_tensor

Q = gguf.GGMLQuantizationType
FLOAT_TYPES = {"F32": Q.F32, "F16": Q.F16, "BF16": Q.BF16}
FILE_TYPES = {Q.F32: gguf.LlamaFileType.ALL_F32, Q.F16: gguf.LlamaFileType.MOSTLY_F16,
              Q.BF16: gguf.LlamaFileType.MOSTLY_BF16}
_STORAGE: dict[gguf.GGMLQuantizationType, np.dtype[Any]] = {
    Q.F32: np.dtype("<f4"), Q.F16: np.dtype("<f2"), Q.BF16: np.dtype("<u2"),
}
_SAME = {("F32", Q.F32), ("F16", Q.F16), ("BF16", Q.BF16)}  # source dtype, output type
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.EBADF}


@dataclass(frozen=True)
class PlannedTensor:
    """One output tensor: where its data comes from and how it is written."""

    name: str
    shape: tuple[int, ...]            # numpy order (rows first)
    out_type: gguf.GGMLQuantizationType
    source: TensorRef | None = None   # read from the checkpoint ...
    data: np.ndarray | None = None    # ... or computed (e.g. rope_freqs)
    transform: Callable[[np.ndarray], np.ndarray] | None = None  # None: values unchanged

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * _STORAGE[self.out_type].itemsize


def output_type(shape: Sequence[int], requested: gguf.GGMLQuantizationType) -> gguf.GGMLQuantizationType:
    """The type a tensor is written in: ``requested``, except 1-D tensors stay F32."""
    return Q.F32 if len(shape) <= 1 else requested


def bf16_to_f32(words: np.ndarray) -> np.ndarray:
    """bf16 (as uint16) -> float32: the bf16 bits are the float32's high half."""
    return (words.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> bf16 (as uint16), rounding to nearest even; NaNs stay (quiet) NaNs."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) >> 16
    rounded = np.where(np.isnan(values), (bits >> 16) | 0x40, rounded)
    return rounded.astype(np.uint16)


def convert_array(array: np.ndarray, src_dtype: str, out_type: gguf.GGMLQuantizationType) -> np.ndarray:
    """``array`` (safetensors dtype ``src_dtype``) in ``out_type``'s storage; same type: as is."""
    if (src_dtype, out_type) in _SAME:
        return array
    values = bf16_to_f32(array) if src_dtype == "BF16" else array.astype(np.float32)
    if out_type == Q.F32:
        return values
    if out_type == Q.F16:
        return values.astype(np.float16)
    return f32_to_bf16(values)


class _FileRange:
    """A tensor's bytes left in the source file, copied to the output file by the kernel.

    Quacks like the numpy array ``GGUFWriter.write_tensor_data`` expects (``nbytes`` and
    ``tofile``), so unchanged tensors (bf16 -> BF16, f16 -> F16, 1-D f32) skip user space:
    ``os.copy_file_range`` on Linux, a reused 8 MB buffer elsewhere.
    """

    _BUFFER = 8 * 1024 * 1024

    def __init__(self, ref: TensorRef) -> None:
        self.ref = ref
        self.nbytes = ref.nbytes

    def tofile(self, out: IO[bytes]) -> None:
        out.flush()
        position = out.tell()
        with open(self.ref.path, "rb") as src:
            done = self._kernel_copy(src.fileno(), out.fileno(), position)
            if done < self.nbytes:
                out.seek(position + done)
                self._buffered_copy(src, out, done)
        out.seek(position + self.nbytes)

    def _kernel_copy(self, src: int, dst: int, position: int) -> int:
        """Copy with copy_file_range; return the bytes copied before it was unavailable."""
        done = 0
        if not hasattr(os, "copy_file_range"):  # pragma: no cover - Windows, macOS
            return done
        while done < self.nbytes:
            try:
                n = os.copy_file_range(src, dst, self.nbytes - done, self.ref.offset + done, position + done)
            except OSError as exc:
                # EXDEV (another filesystem on older kernels), ENOSYS, EOPNOTSUPP...: fall back
                if exc.errno in _NO_KERNEL_COPY:
                    return done
                raise
            if n <= 0:
                return done
            done += n
        return done

    def _buffered_copy(self, src: io.BufferedReader, out: IO[bytes], start: int) -> None:
        src.seek(self.ref.offset + start)
        buffer = memoryview(bytearray(min(self._BUFFER, max(self.nbytes - start, 1))))
        left = self.nbytes - start
        while left:
            n = src.readinto(buffer[: min(left, len(buffer))])
            if not n:
                raise ConvertError(f"{self.ref.path.name} ended inside tensor {self.ref.name}",
                                   hint="the file is truncated; download it again")
            out.write(buffer[:n])
            left -= n
        out.flush()


def tensor_data(planned: PlannedTensor) -> Iterator[np.ndarray]:
    """Yield the tensor's output bytes as one array (the source mapping lives meanwhile)."""
    if planned.data is not None:
        yield convert_array(planned.data.astype(np.float32), "F32", planned.out_type)
        return
    assert planned.source is not None
    if planned.transform is None and (planned.source.dtype, planned.out_type) in _SAME:
        yield cast(np.ndarray, _FileRange(planned.source))
        return
    with open_tensor(planned.source) as array:
        if planned.transform is not None:
            array = planned.transform(array)
        yield convert_array(array, planned.source.dtype, planned.out_type)


def write_gguf(
    path: Path,
    arch_name: str,
    add_metadata: Callable[[gguf.GGUFWriter], None],
    tensors: Sequence[PlannedTensor],
    *,
    progress: bool = False,
) -> None:
    """Write a complete GGUF at ``path``: metadata from ``add_metadata``, then ``tensors``."""
    writer = gguf.GGUFWriter(path, arch_name)
    bar = None
    try:
        add_metadata(writer)
        for planned in tensors:
            storage = _STORAGE[planned.out_type]
            writer.add_tensor_info(planned.name, planned.shape, storage, planned.nbytes,
                                   raw_dtype=planned.out_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        bar = _progress_bar(sum(t.nbytes for t in tensors), progress)
        for planned in tensors:
            for data in tensor_data(planned):
                writer.write_tensor_data(data)
                del data
            if bar is not None:
                bar.update(planned.nbytes)
    finally:
        if bar is not None:  # also on failure: the error line must not share the bar's line
            bar.close()
        writer.close()


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="converting", leave=False)
