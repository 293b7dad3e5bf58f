"""Architecture converters, registered by their Hugging Face ``architectures`` name.

``@register("LlamaForCausalLM")`` on an :class:`~convert.arch.base.Architecture` subclass makes
it available; :func:`architecture_for` picks the converter for a ``config.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from convert.arch.base import Architecture
from runtime.errors import UnsupportedArchitectureError

_REGISTRY: dict[str, type[Architecture]] = {}
_A = TypeVar("_A", bound=type[Architecture])


def register(*hf_names: str) -> Callable[[_A], _A]:
    """Class decorator: convert checkpoints whose config names any of ``hf_names``."""

    def decorate(cls: _A) -> _A:
        for name in hf_names:
            _REGISTRY[name] = cls
        return cls

    return decorate


def supported_architectures() -> list[str]:
    """The HF architecture names rt can convert, sorted."""
    return sorted(_REGISTRY)


def architecture_for(config: Mapping[str, Any]) -> Architecture:
    """The converter for ``config`` (a parsed config.json), or UnsupportedArchitectureError."""
    names = config.get("architectures") or []
    for name in names:
        if name in _REGISTRY:
            return _REGISTRY[name](config)
    found = ", ".join(names) if names else f"none (model_type {config.get('model_type')!r})"
    raise UnsupportedArchitectureError(
        f"rt cannot convert architecture {found}; supported: {', '.join(supported_architectures())}",
        hint="look for a ready-made GGUF of this model (rt convert --hf OWNER/REPO)",
    )


# The modules register themselves on import.
from convert.arch import llama, qwen2  # noqa: E402,F401
