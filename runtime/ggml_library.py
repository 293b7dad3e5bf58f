"""The one place that finds and loads ggml's shared libraries shipped with llama-cpp-python.

Two parts of rt call ggml directly through ctypes: the converter's row quantizers
(``convert/ggml_quant.py``, libggml-base) and the engine's list of CPU buffer types
(``runtime/llm/llama_native.py``, libggml and libggml-base). Both load the very files llama.cpp
itself runs, found from the package's location alone: importing ``llama_cpp`` costs a few
hundred milliseconds, and the converter never needs it. A core module, so ``convert`` and
``runtime.llm`` share it without importing each other.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
from pathlib import Path

# one name per platform, as the wheel's CMake build names them
_FILE_NAMES = ("lib{}.so", "lib{}.dylib", "{}.dll")


class GgmlLibraryError(OSError):
    """llama-cpp-python, or one of ggml's libraries in it, is missing or cannot be loaded."""


def library_folder() -> Path:
    """The folder holding llama-cpp-python's native libraries (without importing the package)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        raise GgmlLibraryError("llama-cpp-python is not installed")
    return Path(spec.origin).parent / "lib"


@functools.lru_cache(maxsize=None)
def load_library(name: str) -> ctypes.CDLL:
    """ggml's library ``name`` (``"ggml"``, ``"ggml-base"``), loaded once per process.

    Loading the file llama.cpp already loaded returns the same handle, so its symbols and
    global state are llama.cpp's own. Raises :class:`GgmlLibraryError`.
    """
    folder = library_folder()
    for pattern in _FILE_NAMES:
        path = folder / pattern.format(name)
        if path.exists():
            try:
                return ctypes.CDLL(str(path))
            except OSError as exc:
                raise GgmlLibraryError(f"cannot load {path}: {exc}") from None
    raise GgmlLibraryError(f"no {name} library in {folder}")
