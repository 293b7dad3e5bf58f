"""What `rt convert` accepts, defined once and cheap to import (the CLI's --help reads it).

The quantization names, the default, the pickle weight files rt refuses, and the shape of a
hub repo id. Heavy modules (gguf, numpy, llama.cpp) stay out of here.
"""

from __future__ import annotations

from convert.quantize import QUANTIZED_TYPES
from runtime.errors import ConfigError
from runtime.models.hub_files import PICKLE_SUFFIXES, looks_like_repo_id  # noqa: F401 (convert's names too)

DEFAULT_QUANT = "Q4_K_M"
# F32, F16 and BF16 are written directly; the rest go through llama.cpp's quantizer.
QUANT_TYPES: tuple[str, ...] = ("F32", "F16", "BF16", *QUANTIZED_TYPES)


def check_quant(quant: str) -> str:
    """``quant`` upper-cased, or a :class:`ConfigError` listing the types rt can write."""
    normalized = quant.upper()
    if normalized not in QUANT_TYPES:
        raise ConfigError(f"cannot convert to {quant}", hint=f"choose one of {', '.join(QUANT_TYPES)}")
    return normalized
