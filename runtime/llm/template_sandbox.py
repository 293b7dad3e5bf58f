"""A Jinja sandbox that bounds what a chat template from a GGUF file can cost.

Jinja's own sandbox keeps a template away from Python internals (``''.__class__`` is refused)
and caps ``range()`` at 100,000 items, but one expression can still burn minutes of CPU or
gigabytes of memory: ``9 ** (3 * 9 ** 9)``, ``'a' * 10 ** 10``, ``'x' | center(10 ** 10)``, or
a string doubled with ``~`` forty times. A GGUF downloaded from anywhere carries its template,
so rt renders it here:

- arithmetic (``* ** + - / // %``) refuses integers over :data:`MAX_INT_BITS` bits and strings
  or lists over :data:`MAX_LENGTH` items, checking the operands *before* computing;
- every call and filter refuses integer arguments over :data:`MAX_LENGTH` (the width of
  ``center``, ``ljust``, a format's padding) and results over :data:`MAX_LENGTH`;
- ``~`` concatenation checks the total length before joining;
- the rendered text may not pass :data:`MAX_OUTPUT` characters;
- rendering stops after :data:`MAX_SECONDS`: signals cannot interrupt it portably (Windows,
  or a thread other than the main one), so a line tracer on the template's own frames checks
  the clock, which catches every loop.

Exceeding a bound raises :class:`TemplateLimitError`, which :mod:`runtime.llm.chat_template`
turns into an :class:`~runtime.errors.UnsupportedModelError`.
"""

from __future__ import annotations

import functools
import re
import string
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import Any

from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import Concat
from jinja2.sandbox import ImmutableSandboxedEnvironment

# A 7B model's longest useful prompt (128k tokens) is well under 1 MB of text.
MAX_LENGTH = 4_000_000
MAX_OUTPUT = 16_000_000
MAX_INT_BITS = 4096
MAX_SECONDS = 5.0

_TEMPLATE_FILE = "<template>"
_FORMAT_WIDTH = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\d*)(?:\.(\d*))?")  # width, precision


class TemplateLimitError(Exception):
    """The template went past one of the bounds above."""


def _check_value(value: Any, what: str) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitError(f"{what} gives an integer over {MAX_INT_BITS} bits")
    if isinstance(value, (str, bytes, list, tuple)) and len(value) > MAX_LENGTH:
        raise TemplateLimitError(f"{what} gives {len(value):,} items (the limit is {MAX_LENGTH:,})")
    return value


def _bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


def _length(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else 0


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too large, before computing it."""
    what = f"'{operator}'"
    if operator == "**" and isinstance(right, int) and right > 1 and _bits(left) > 1:
        if _bits(left) * right > MAX_INT_BITS:
            raise TemplateLimitError(f"{what} would give an integer over {MAX_INT_BITS} bits")
    elif operator == "*":
        for sequence, count in ((left, right), (right, left)):
            if _length(sequence) and isinstance(count, int) and _length(sequence) * count > MAX_LENGTH:
                raise TemplateLimitError(f"{what} would give over {MAX_LENGTH:,} items")
        if _bits(left) + _bits(right) > MAX_INT_BITS:
            raise TemplateLimitError(f"{what} would give an integer over {MAX_INT_BITS} bits")
    elif operator == "+" and _length(left) + _length(right) > MAX_LENGTH:
        raise TemplateLimitError(f"{what} would give over {MAX_LENGTH:,} items")
    elif operator == "%" and isinstance(left, str):
        arguments = right if isinstance(right, tuple) else (right,)
        _check_arguments(arguments, what)
        # a width or precision inside the format string (``'%999999999d'``)
        numbers = [n for match in _FORMAT_WIDTH.findall(left) for n in match if n]
        if any(len(n) > 7 or int(n) > MAX_LENGTH for n in numbers):
            raise TemplateLimitError(f"{what} pads beyond {MAX_LENGTH:,} characters")


def _check_arguments(arguments: Iterable[Any], what: str) -> None:
    for value in arguments:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_LENGTH:
            raise TemplateLimitError(f"{what} was given {value} (the limit is {MAX_LENGTH:,})")


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)  # keeps ``jinja_pass_arg`` (pass_context and friends)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_arguments([*args, *kwargs.values()], f"the filter {name!r}")
        if name == "format" and args:  # ``'%999999999d' | format(1)``
            _check_binop("%", args[0], tuple(args[1:]))
        return _check_value(function(*args, **kwargs), f"the filter {name!r}")

    return bounded


class _BoundedCodeGenerator(CodeGenerator):
    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        # ``a ~ b`` is compiled to a join that no sandbox hook sees: route it through one
        self.write("environment.bounded_concat((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with bounded arithmetic, calls, filters and concatenation."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "-", "/", "//", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def add_filter(self, name: str, function: Callable[..., Any]) -> None:
        self.filters[name] = _bounded_filter(name, function)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        try:
            result = super().call_binop(context, operator, left, right)
        except OverflowError as exc:  # float ** float
            raise TemplateLimitError(f"'{operator}' overflowed ({exc})") from None
        return _check_value(result, f"'{operator}'")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        what = f"calling {getattr(__obj, '__name__', type(__obj).__name__)!r}"
        _check_arguments([*args, *kwargs.values()], what)
        return _check_value(super().call(__context, __obj, *args, **kwargs), what)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is not None:  # a width in a replacement field: ``'{:>999999999}'.format(1)``
            for _, _, spec, _ in string.Formatter().parse(value.__self__):
                if any(len(n) > 7 or int(n) > MAX_LENGTH for n in re.findall(r"\d+", spec or "")):
                    raise TemplateLimitError(f"str.format pads beyond {MAX_LENGTH:,} characters")
        return wrapper

    def bounded_concat(self, parts: tuple[Any, ...]) -> str:
        texts = [str(part) for part in parts]
        if sum(len(t) for t in texts) > MAX_LENGTH:
            raise TemplateLimitError(f"'~' would give over {MAX_LENGTH:,} characters")
        return "".join(texts)


def render_bounded(template: Any, context: dict[str, Any]) -> str:
    """Render a :class:`BoundedSandbox` template within :data:`MAX_SECONDS` and :data:`MAX_OUTPUT`."""
    deadline = time.monotonic() + MAX_SECONDS

    def on_line(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise TemplateLimitError(f"rendering took over {MAX_SECONDS:.0f} s")
        return on_line

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        return on_line if frame.f_code.co_filename == _TEMPLATE_FILE else None

    pieces: list[str] = []
    size = 0
    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        stream: Iterator[str] = template.generate(**context)
        for piece in stream:
            size += len(piece)
            if size > MAX_OUTPUT:
                raise TemplateLimitError(f"the output passed {MAX_OUTPUT:,} characters")
            pieces.append(piece)
    finally:
        sys.settrace(previous)
    return "".join(pieces)
