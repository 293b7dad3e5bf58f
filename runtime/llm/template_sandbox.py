"""A Jinja sandbox that bounds what a chat template from a GGUF file can cost.

Jinja's own sandbox keeps a template away from Python internals (``''.__class__`` is refused)
and caps ``range()`` at 100,000 items, but one expression can still burn minutes of CPU or
gigabytes of memory: ``9 ** (3 * 9 ** 9)``, ``'a' * 10 ** 10``, ``'x' | center(10 ** 10)``, or
a string doubled with ``~`` forty times. A GGUF downloaded from anywhere carries its template,
so rt renders it here:

- arithmetic (``* ** + - / // %``) refuses integers over :data:`MAX_INT_BITS` bits, strings
  over :data:`MAX_LENGTH` characters and lists over :data:`MAX_ITEMS` items, checking the
  operands *before* computing;
- every call and filter refuses integer arguments over :data:`MAX_LENGTH` (the width of
  ``center``, ``ljust``, a format's padding) and results over those sizes; the filters and
  string methods whose result can grow far past their arguments (``indent``, ``replace``,
  ``join``, ``expandtabs``, ``slice``, ``tojson``'s indent) have their result's size worked out
  from the arguments and refused *before* they run (``indent(4000000)`` of 100 lines once took
  1.9 GB);
- everything the template builds counts against :data:`MAX_PRODUCED` characters per render, so
  a list that keeps growing by new 4 MB strings (once 2.65 GB) stops at a bounded size;
- ``~`` concatenation checks the total length before joining;
- the rendered text may not pass :data:`MAX_OUTPUT` characters;
- rendering stops after :data:`MAX_SECONDS`: signals cannot interrupt it portably (Windows,
  or a thread other than the main one), so a line tracer on the template's own frames checks
  the clock, which catches every loop. One C call cannot be interrupted that way (a ``sort``
  of 4M items ran 22 s), so the sorting and comparing filters refuse inputs whose comparisons
  would pass :data:`MAX_SORT_WORK` characters before they start.

Exceeding a bound raises :class:`TemplateLimitError`, which :mod:`runtime.llm.chat_template`
turns into an :class:`~runtime.errors.UnsupportedModelError`.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import math
import re
import string
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import FrameType
from typing import Any

from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import Concat
from jinja2.sandbox import ImmutableSandboxedEnvironment

# A 7B model's longest useful prompt (128k tokens) is well under 1 MB of text.
MAX_LENGTH = 4_000_000
MAX_ITEMS = 100_000  # items of a list, tuple or dict (Jinja's own cap on range())
MAX_OUTPUT = 16_000_000
MAX_PRODUCED = 64_000_000  # characters (list items count 8) built by one render, garbage or not
MAX_SORT_WORK = 200_000_000  # characters compared by one sort: n * log2(n) * the longest item
MAX_INT_BITS = 4096
MAX_SECONDS = 5.0
# the filters that iterate over or compare all of their input
_ITERATING = frozenset({"sort", "unique", "dictsort", "groupby", "min", "max", "sum", "map", "select", "reject",
                        "selectattr", "rejectattr", "list", "batch", "slice", "join", "items"})
_COMPARING = frozenset({"sort", "unique", "dictsort", "groupby", "min", "max"})

_TEMPLATE_FILE = "<template>"
_FORMAT_WIDTH = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\d*)(?:\.(\d*))?")  # width, precision


class TemplateLimitError(Exception):
    """The template went past one of the bounds above."""


_produced: contextvars.ContextVar[list[int]] = contextvars.ContextVar("template_produced")


def _charge(size: int, what: str) -> None:
    """Count ``size`` characters built by ``what`` against this render's :data:`MAX_PRODUCED`."""
    produced = _produced.get(None)
    if produced is None:
        return
    produced[0] += size
    if produced[0] > MAX_PRODUCED:
        raise TemplateLimitError(f"{what}: the template built over {MAX_PRODUCED:,} characters")


def _limit(value: Any) -> int:
    return MAX_ITEMS if isinstance(value, (list, tuple, dict)) else MAX_LENGTH


def _size(value: Any) -> int:
    """What ``value`` costs in characters (a list's items, pointers, count 8 each)."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, (list, tuple, dict)):
        return 8 * len(value)
    return 0


def _check_value(value: Any, what: str) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitError(f"{what} gives an integer over {MAX_INT_BITS} bits")
    if isinstance(value, (str, bytes, list, tuple, dict)) and len(value) > _limit(value):
        raise TemplateLimitError(f"{what} gives {len(value):,} items (the limit is {_limit(value):,})")
    _charge(_size(value), what)
    return value


def _check_size(size: int, limit: int, what: str) -> None:
    """Refuse a result of ``size`` before it is built."""
    if size > limit:
        raise TemplateLimitError(f"{what} would give over {limit:,} items")
    _charge(size, what)


def _bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


def _length(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict)) else 0


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too large, before computing it."""
    what = f"'{operator}'"
    if operator == "**" and isinstance(right, int) and right > 1 and _bits(left) > 1:
        if _bits(left) * right > MAX_INT_BITS:
            raise TemplateLimitError(f"{what} would give an integer over {MAX_INT_BITS} bits")
    elif operator == "*":
        for sequence, count in ((left, right), (right, left)):
            if _length(sequence) and isinstance(count, int) and _length(sequence) * count > _limit(sequence):
                raise TemplateLimitError(f"{what} would give over {_limit(sequence):,} items")
        if _bits(left) + _bits(right) > MAX_INT_BITS:
            raise TemplateLimitError(f"{what} would give an integer over {MAX_INT_BITS} bits")
    elif operator == "+" and _length(left) + _length(right) > _limit(left):
        raise TemplateLimitError(f"{what} would give over {_limit(left):,} items")
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
    try:
        signature: inspect.Signature | None = inspect.signature(function)
    except (TypeError, ValueError):
        signature = None
    passes_first = getattr(function, "jinja_pass_arg", None) is not None  # the context or environment
    # an async-variant filter is called with the context that its wrapped function never sees
    first = next(iter(signature.parameters), "") if signature is not None else ""
    binds_own = passes_first and first not in ("context", "eval_ctx", "environment", "env")

    @functools.wraps(function)  # keeps ``jinja_pass_arg`` (pass_context and friends)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        what = f"the filter {name!r}"
        _check_arguments([*args, *kwargs.values()], what)
        if name == "format" and args:  # ``'%999999999d' | format(1)``
            _check_binop("%", args[0], tuple(args[1:]))
        own = args[1:] if passes_first else args  # without the context or environment
        arguments: dict[str, Any] = {}
        if signature is not None:
            try:
                arguments = dict(signature.bind(*(own if binds_own else args), **kwargs).arguments)
            except TypeError:
                arguments = {}
        value = own[0] if own else None
        _check_filter(name, value, arguments, what)
        return _check_value(function(*args, **kwargs), what)

    return bounded


def _check_filter(name: str, value: Any, arguments: Mapping[str, Any], what: str) -> None:
    """Refuse, before it runs, a filter whose input or result would pass the bounds."""
    if name in _ITERATING and _length(value) > MAX_ITEMS:
        raise TemplateLimitError(f"{what} was given {_length(value):,} items (the limit is {MAX_ITEMS:,})")
    if name in _COMPARING:
        _check_sort(value, what)
    if name == "indent" and isinstance(value, str):
        width = arguments.get("width", 4)
        width = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        _check_size(len(value) + width * (value.count("\n") + 1), MAX_LENGTH, what)
    elif name == "replace" and isinstance(value, str):
        _check_replace(value, arguments.get("old"), arguments.get("new"), arguments.get("count"), what)
    elif name == "join" and isinstance(value, (list, tuple)):
        _check_join(value, arguments.get("d", ""), what)
    elif name == "slice" and isinstance(arguments.get("slices"), int) and arguments["slices"] > MAX_ITEMS:
        raise TemplateLimitError(f"{what} would give over {MAX_ITEMS:,} items")
    elif name == "tojson" and isinstance(arguments.get("indent"), int) and arguments["indent"] > 64:
        raise TemplateLimitError(f"{what} was given an indent of {arguments['indent']} (the limit is 64)")


def _check_sort(value: Any, what: str) -> None:
    """Refuse to compare items whose comparisons would outlast the time bound (one C call)."""
    items = list(value.values() if isinstance(value, dict) else value) if _length(value) else []
    longest = max((_length(item) for item in items), default=0)
    work = len(items) * max(1.0, math.log2(max(2, len(items)))) * max(1, longest)
    if work > MAX_SORT_WORK:
        raise TemplateLimitError(f"{what} would compare {len(items):,} items of up to {longest:,} characters")


def _check_replace(text: str, old: Any, new: Any, count: Any, what: str) -> None:
    if not isinstance(old, str) or not isinstance(new, str):
        return
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    _check_size(len(text) + found * (len(new) - len(old)), MAX_LENGTH, what)


def _check_join(items: Iterable[Any], separator: Any, what: str) -> None:
    parts = [item for item in items]
    size = sum(_length(item) if isinstance(item, str) else 24 for item in parts)
    _check_size(size + _length(separator) * max(0, len(parts) - 1), MAX_LENGTH, what)


def _check_method(method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], what: str) -> None:
    """Refuse, before it runs, a ``str`` method call whose result would pass the bounds."""
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    if isinstance(owner, str):
        if name == "replace" and len(args) >= 2:
            _check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count"), what)
        elif name == "join" and args and isinstance(args[0], (list, tuple)):
            if len(args[0]) > MAX_ITEMS:
                raise TemplateLimitError(f"{what} was given {len(args[0]):,} items (the limit is {MAX_ITEMS:,})")
            _check_join(args[0], owner, what)
        elif name == "expandtabs":
            tab = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(tab, int):
                _check_size(len(owner) + owner.count("\t") * max(0, tab), MAX_LENGTH, what)


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
        _check_method(__obj, args, kwargs, what)
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
        _charge(sum(len(t) for t in texts), "'~'")
        return "".join(texts)


def render_bounded(template: Any, context: dict[str, Any], *, deadline: float | None = None) -> str:
    """Render a :class:`BoundedSandbox` template within :data:`MAX_SECONDS` (or by the
    ``time.monotonic()`` ``deadline``), :data:`MAX_OUTPUT` and :data:`MAX_PRODUCED`."""
    if deadline is None:
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
    token = _produced.set([0])
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
        _produced.reset(token)
    return "".join(pieces)
