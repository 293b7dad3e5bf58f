"""Which model architectures the bundled llama.cpp can load.

llama.cpp exports no list of its architectures: the names live in a table inside
``libllama`` (``LLM_ARCH_NAMES`` in llama-arch.cpp) and the string in a GGUF's
``general.architecture`` is looked up there at load time. So we ask the binary itself: an
architecture llama.cpp knows appears in the shared library as a NUL-terminated string. We
match ``name + b"\\0"`` rather than ``b"\\0" + name + b"\\0"`` because linkers merge string
tails (``bert`` is stored as the end of ``nomic-bert``). A hit is necessary, not sufficient
(a stray string could match), which is the right way round: a false "known" only defers the
error to llama.cpp's loader, while every name llama.cpp really knows is found.

The ``gguf`` package's ``MODEL_ARCH_NAMES`` is the other candidate, but it is versioned apart
from llama-cpp-python and drifts both ways; it is used only to name examples in the error
message and as a fallback when the library file cannot be found. The library is located with
``importlib.util.find_spec`` so that ``rt info`` never imports (and loads) llama_cpp.
"""

from __future__ import annotations

import difflib
import functools
import importlib.metadata
import importlib.util
import logging
from pathlib import Path

import gguf

from runtime.errors import UnsupportedModelError

log = logging.getLogger(__name__)

_LIBRARY_NAMES = ("libllama.so", "libllama.dylib", "llama.dll")


def llama_library() -> Path | None:
    """Path of the bundled ``libllama`` shared library, without importing ``llama_cpp``."""
    spec = importlib.util.find_spec("llama_cpp")
    for location in (spec.submodule_search_locations or []) if spec else []:
        for folder in (Path(location) / "lib", Path(location)):
            for name in _LIBRARY_NAMES:
                if (folder / name).is_file():
                    return folder / name
    return None


@functools.lru_cache(maxsize=4)
def _library_bytes(path: Path, mtime_ns: int) -> bytes:
    return path.read_bytes()  # ~4 MB, read once per process


def _llama_cpp_version() -> str:
    try:
        return importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def is_known(arch: str) -> bool:
    """Whether the bundled llama.cpp may know ``arch`` (see the module docstring for how)."""
    library = llama_library()
    if library is None:
        log.debug("libllama not found; checking %r against the gguf package's list", arch)
        return arch in gguf.MODEL_ARCH_NAMES.values()
    data = _library_bytes(library, library.stat().st_mtime_ns)
    return bool(arch) and arch.encode("utf-8") + b"\0" in data


def known_architectures() -> list[str]:
    """The ``gguf`` package's architecture names that the bundled llama.cpp also knows, sorted."""
    return sorted(name for name in set(gguf.MODEL_ARCH_NAMES.values()) if is_known(name))


def check_supported(arch: str, path: Path | str) -> None:
    """Raise :class:`UnsupportedModelError` if the bundled llama.cpp cannot load ``arch``."""
    if is_known(arch):
        return
    known = known_architectures()
    close = difflib.get_close_matches(arch, known, n=3)
    examples = ", ".join(close or [n for n in ("llama", "qwen3", "gemma3", "mistral3", "phi3") if n in known])
    raise UnsupportedModelError(
        f"{path}: architecture {arch!r} is not supported by the bundled llama.cpp "
        f"(llama-cpp-python {_llama_cpp_version()} knows {len(known)} architectures"
        f"{'; closest: ' if close else ', e.g. '}{examples})",
        hint="use a model of a supported architecture, or update llama-cpp-python",
    )
