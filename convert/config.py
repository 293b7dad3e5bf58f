"""What `rt convert` accepts, defined once and cheap to import (the CLI's --help reads it).

The quantization names, the default, the pickle weight files rt refuses, and the shape of a
hub repo id. Heavy modules (gguf, numpy, llama.cpp) stay out of here.
"""

from __future__ import annotations

import re

from convert.quantize import QUANTIZED_TYPES
from runtime.errors import ConfigError

DEFAULT_QUANT = "Q4_K_M"
# F32, F16 and BF16 are written directly; the rest go through llama.cpp's quantizer.
QUANT_TYPES: tuple[str, ...] = ("F32", "F16", "BF16", *QUANTIZED_TYPES)
# Weight files that are Python pickles: loading one can run code, so rt never reads them.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


def check_quant(quant: str) -> str:
    """``quant`` upper-cased, or a :class:`ConfigError` listing the types rt can write."""
    normalized = quant.upper()
    if normalized not in QUANT_TYPES:
        raise ConfigError(f"cannot convert to {quant}", hint=f"choose one of {', '.join(QUANT_TYPES)}")
    return normalized


def looks_like_repo_id(text: str) -> bool:
    """``OWNER/NAME`` as the hub spells repo ids (letters, digits, ``_ . -``)."""
    return _REPO_ID.fullmatch(text) is not None
