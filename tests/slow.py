"""The ``slow`` marker for one value of a parametrized family: ``python -m pytest -m "not slow"``
keeps the first value (a smoke test of the feature) and leaves the repetitions to the full run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest


def slow_after_first(values: Iterable[Any]) -> list[Any]:
    """``values`` for ``pytest.mark.parametrize``, every one but the first marked ``slow``."""
    return [value if n == 0 else pytest.param(value, marks=pytest.mark.slow) for n, value in enumerate(values)]


def slow_unless(values: Iterable[Any], fast: Any) -> list[Any]:
    """``values`` with every one but ``fast`` marked ``slow``."""
    return [value if value == fast else pytest.param(value, marks=pytest.mark.slow) for value in values]
