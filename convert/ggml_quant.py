"""ggml's own row quantizers, called through ctypes from the libggml-base that llama-cpp-python ships.

The direct conversion path (convert/direct_quant.py) turns float32 rows into Q4_K, Q6_K, Q8_0, ...
blocks with exactly the code llama.cpp's quantizer runs (``ggml_quantize_chunk``), so its output
is byte-identical. The calls release the GIL (ctypes does for every foreign call), so Python
threads quantize row chunks on all cores.

The library is found and loaded by :mod:`runtime.ggml_library` (shared with the engine), which
never imports ``llama_cpp``. A library or symbol that is missing is a
:class:`GgmlUnavailableError`; the pipeline then falls back to the two-step path.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from runtime.errors import ConvertError
from runtime.ggml_library import GgmlLibraryError, load_library

_GGML_TYPE_F32 = 0
# What the direct path needs; a build lacking one of them cannot take it.
REQUIRED_SYMBOLS = ("ggml_quantize_chunk", "ggml_quantize_init", "ggml_quantize_requires_imatrix",
                    "ggml_row_size", "ggml_blck_size", "ggml_validate_row_data")


class GgmlUnavailableError(ConvertError, OSError):
    """libggml-base, or one of the functions the direct path calls, cannot be loaded."""


class Ggml:
    """The few libggml-base functions rt calls, with their C signatures declared."""

    def __init__(self, library: ctypes.CDLL) -> None:
        missing = [name for name in REQUIRED_SYMBOLS if not hasattr(library, name)]
        if missing:
            raise GgmlUnavailableError(f"{library._name} lacks {', '.join(missing)}",
                                       hint="upgrade llama-cpp-python")
        self._lib = library
        f = library.ggml_quantize_chunk
        f.restype = ctypes.c_size_t
        f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                      ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
        library.ggml_quantize_init.restype = None
        library.ggml_quantize_init.argtypes = [ctypes.c_int]
        library.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
        library.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
        library.ggml_row_size.restype = ctypes.c_size_t
        library.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
        library.ggml_blck_size.restype = ctypes.c_int64
        library.ggml_blck_size.argtypes = [ctypes.c_int]
        library.ggml_validate_row_data.restype = ctypes.c_bool
        library.ggml_validate_row_data.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]

    def prepare(self, ggml_type: int) -> None:
        """Build ``ggml_type``'s lookup tables once, before threads quantize concurrently.

        Raises ConvertError for a type that needs an importance matrix (rt has none).
        """
        if self._lib.ggml_quantize_requires_imatrix(ggml_type):
            raise ConvertError(f"ggml type {ggml_type} needs an importance matrix, which rt does not compute")
        self._lib.ggml_quantize_init(ggml_type)

    def row_size(self, ggml_type: int, n_per_row: int) -> int:
        return int(self._lib.ggml_row_size(ggml_type, n_per_row))

    def block_size(self, ggml_type: int) -> int:
        return int(self._lib.ggml_blck_size(ggml_type))

    def quantize_rows(self, ggml_type: int, rows: np.ndarray, out: np.ndarray) -> None:
        """Quantize the C-contiguous float32 matrix ``rows`` into the uint8 buffer ``out``.

        ``out`` must hold exactly ``row_size(type, n_per_row) * n_rows`` bytes. Raises
        ConvertError when ggml's validation rejects the rows (NaN or inf, which llama.cpp's
        loader refuses in its input) or the result (a scale that overflows float16, which its
        quantizer refuses).
        """
        n_rows, n_per_row = rows.shape
        assert rows.dtype == np.float32 and rows.flags.c_contiguous and out.flags.c_contiguous
        assert out.nbytes == self.row_size(ggml_type, n_per_row) * n_rows
        if not self._lib.ggml_validate_row_data(_GGML_TYPE_F32, rows.ctypes.data, rows.nbytes):
            raise ConvertError("the weights hold NaN or inf values",
                               hint="check the checkpoint: a corrupt or diverged model cannot be quantized")
        written = self._lib.ggml_quantize_chunk(ggml_type, rows.ctypes.data, out.ctypes.data,
                                                0, n_rows, n_per_row, None)
        if written != out.nbytes or not self._lib.ggml_validate_row_data(ggml_type, out.ctypes.data, written):
            raise ConvertError("quantized data validation failed (a block's scale overflows float16)",
                               hint="check the checkpoint: a corrupt or diverged model cannot be quantized")


@functools.lru_cache(maxsize=1)
def load_ggml() -> Ggml:
    """The libggml-base shipped with llama-cpp-python, loaded once per process."""
    try:
        library = load_library("ggml-base")
    except GgmlLibraryError as exc:
        raise GgmlUnavailableError(str(exc), hint="reinstall llama-cpp-python") from None
    return Ggml(library)
