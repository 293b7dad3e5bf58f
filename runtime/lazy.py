"""Names a package exports without importing their modules until first use.

``import runtime`` (and ``runtime.index``, ``runtime.rag``) must stay cheap: ``rt --help`` and
``rt info`` import them and must not pay for llama.cpp, numpy, SQLite or torch. A package lists
each public name with the module that defines it; :func:`lazy_exports` gives the package the
module-level ``__getattr__`` (PEP 562) that imports that module when the name is first used.
The table must be a dict literal: tests/test_import_graph.py reads it as the package's imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A ``__getattr__`` for ``package`` that resolves ``name`` from the module ``exports[name]``
    (a dotted path) and raises AttributeError for names it does not export."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
