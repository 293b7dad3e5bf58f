"""Architecture converters, one module per model family, loaded only when asked for.

:data:`MODULES` maps each Hugging Face ``architectures`` name to the module of this package that
converts it (as llama.cpp's conversion package maps names to model classes). The module registers
its :class:`~convert.arch.base.Architecture` subclass with ``@register(...)`` when it is imported,
which :func:`architecture_for` does on first use: converting a Llama checkpoint never imports the
Qwen2 code, and this package imports none of its plugins (no import cycle).

Adding an architecture: a module here with a registered subclass, and its names in :data:`MODULES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from convert.arch.base import Architecture
from runtime.errors import UnsupportedArchitectureError

# HF architecture name -> the module (in this package) that registers its converter.
MODULES: dict[str, str] = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
}

_REGISTRY: dict[str, type[Architecture]] = {}
_A = TypeVar("_A", bound=type[Architecture])


def register(*hf_names: str) -> Callable[[_A], _A]:
    """Class decorator: convert checkpoints whose config names any of ``hf_names``.

    Each name must be listed in :data:`MODULES` (that is how the converter is found).
    """

    def decorate(cls: _A) -> _A:
        for name in hf_names:
            if name not in MODULES:
                raise ValueError(f"{name} is not listed in convert.arch.MODULES")
            _REGISTRY[name] = cls
        return cls

    return decorate


def supported_architectures() -> list[str]:
    """The HF architecture names rt can convert, sorted."""
    return sorted(MODULES)


def converter_class(name: str) -> type[Architecture] | None:
    """The registered converter for the HF architecture ``name``, importing its module once;
    ``None`` when rt has none."""
    module = MODULES.get(name)
    if module is None:
        return None
    if name not in _REGISTRY:
        importlib.import_module(f"{__name__}.{module}")
    return _REGISTRY[name]


def architecture_for(config: Mapping[str, Any]) -> Architecture:
    """The converter for ``config`` (a parsed config.json), or UnsupportedArchitectureError."""
    names = config.get("architectures") or []
    for name in names:
        cls = converter_class(name)
        if cls is not None:
            return cls(config)
    found = ", ".join(names) if names else f"none (model_type {config.get('model_type')!r})"
    raise UnsupportedArchitectureError(
        f"rt cannot convert architecture {found}; supported: {', '.join(supported_architectures())}",
        hint="look for a ready-made GGUF of this model (rt convert --hf OWNER/REPO)",
    )
