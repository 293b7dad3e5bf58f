"""A chat template from a GGUF cannot reach Python internals, burn CPU or exhaust memory.

Each hostile template must end in an :class:`UnsupportedModelError` that names the template,
quickly: without the bounds, most of them run for minutes or allocate gigabytes.
"""

from __future__ import annotations

import time

import pytest

from runtime.errors import InputError, UnsupportedModelError
from runtime.llm import template_sandbox
from runtime.llm.chat_template import question_messages, render_chat

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _render(template: str) -> str:
    return render_chat(template, question_messages("Hi"), model_name="hostile.gguf")


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.system('echo pwned') }}",
    "{{ raise_exception.__globals__['__builtins__'] }}",
    "{{ messages.__class__.__base__.__subclasses__() }}",
    "{% set x = messages.append({'role': 'user'}) %}",
])
def test_a_template_cannot_reach_python_internals(template: str) -> None:
    with pytest.raises(UnsupportedModelError, match="chat template of hostile.gguf failed"):
        _render(template)


HOSTILE = {
    "huge power": "{{ 9 ** (3 * 9 ** 9) }}",
    "huge product": "{{ (10 ** 1000) * (10 ** 1000) * (10 ** 1000) * (10 ** 1000) * (10 ** 1000) }}",
    "huge string": "{{ 'a' * 10 ** 10 }}",
    "huge list": "{{ [1, 2] * 10 ** 9 }}",
    "doubling with ~": "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
                       "{% endfor %}{{ ns.s | length }}",
    "doubling with +": "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}"
                       "{% endfor %}{{ ns.s | length }}",
    "filter width": "{{ 'x' | center(10 ** 10) }}",
    "method width": "{{ 'x'.ljust(10 ** 10) }}",
    "percent width": "{{ '%999999999d' % 1 }}",
    "format filter width": "{{ '%999999999d' | format(1) }}",
    "str.format width": "{{ '{:>999999999}'.format(1) }}",
    "float overflow": "{{ 2.0 ** 100000 }}",
    "int to float overflow": "{{ (2 ** 2000) / 3 }}",
    "huge range": "{% for i in range(10 ** 12) %}{% endfor %}",
    "output size": "{% for i in range(100000) %}{% for j in range(100000) %}{{ 'x' * 1000 }}"
                   "{% endfor %}{% endfor %}",
    "endless recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_template_that_would_burn_cpu_or_memory_is_stopped_with_an_rt_error(case: str) -> None:
    start = time.monotonic()
    with pytest.raises(UnsupportedModelError, match="chat template of hostile.gguf"):
        _render(HOSTILE[case])
    assert time.monotonic() - start < template_sandbox.MAX_SECONDS + 2


def test_a_template_that_loops_without_output_is_stopped_after_the_time_bound(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(template_sandbox, "MAX_SECONDS", 0.5)
    start = time.monotonic()
    with pytest.raises(UnsupportedModelError, match=r"was stopped: rendering took over"):
        _render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
    assert time.monotonic() - start < 3


def test_ordinary_templates_render_as_before() -> None:
    assert _render(CHATML).endswith("<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    text = _render("{{ '%-5s|%3d' % ('ab', 7) }} {{ '{:>4}'.format(1) }} {{ 'x' | center(5) }} "
                   "{{ (messages | tojson(indent=2)) | length > 10 }} {{ 2 ** 10 }} {{ 'ab' ~ 'cd' }}")
    assert text == "ab   |  7    1   x   True 1024 abcd"


def test_raise_exception_still_reaches_the_caller_as_an_input_error() -> None:
    with pytest.raises(InputError, match="roles must alternate"):
        _render("{{ raise_exception('roles must alternate') }}")




# issue 21 §2: each of these once ran past the bounds, checked only after computing
GROWING = {
    "indent of many lines": "{{ ('x\\n' * 100) | indent(4000000) }}",
    "indent by a long string": "{{ ('x\\n' * 100) | indent('y' * 4000000) }}",
    "growing namespace list": "{% set ns = namespace(items=[]) %}{% for i in range(100000) %}"
                              "{% set ns.items = ns.items + ['x' * 4000000] %}{% endfor %}{{ ns.items | length }}",
    "growing namespace list by ~": "{% set ns = namespace(items=[], s='x' * 3000000) %}{% for i in range(100000) %}"
                                   "{% set ns.items = ns.items + [ns.s ~ i] %}{% endfor %}",
    "sort of 4M items": "{{ ((range(100000) | list) * 40) | sort | length }}",
    "sort of 4M characters": "{{ ('ab' * 2000000) | sort | length }}",
    "sort of long strings": "{% set a = 'x' * 3000000 %}{{ ([a ~ 'a', a ~ 'b'] * 50000) | sort | length }}",
    "replace growth": "{{ ('x' * 1000000) | replace('x', 'yyyyyyyyyy') }}",
    "replace of nothing": "{{ ('x' * 1000000) | replace('', 'abcdef') }}",
    "method replace": "{{ ('x' * 1000000).replace('x', 'yyyyyyyyyy') }}",
    "join growth": "{{ (['x' * 1000000] * 50) | join }}",
    "method join": "{{ ('y' * 1000000).join(['a'] * 50) }}",
    "expandtabs": "{{ ('\\t' * 1000000).expandtabs(1000) }}",
    "slice count": "{{ [1, 2] | slice(4000000) | list | length }}",
    "tojson indent": "{{ (range(1000) | list) | tojson(indent=4000000) }}",
    "list repetition": "{{ ([1] * 4000000) | length }}",
}


@pytest.mark.parametrize("case", sorted(GROWING))
def test_a_growing_template_is_refused_before_it_takes_memory_or_time(case: str) -> None:
    import tracemalloc

    start = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(UnsupportedModelError, match="chat template of hostile.gguf was stopped") as error:
            _render(GROWING[case])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(error.value)
    assert time.monotonic() - start < template_sandbox.MAX_SECONDS + 2
    # the bounds allow MAX_PRODUCED characters built (64 MB) plus one value; before, GBs
    assert peak < 200 * 2**20


def test_templates_that_build_within_the_bounds_still_render() -> None:
    text = _render("{{ ('a\\nb' | indent(2)) }}|{{ 'a-b' | replace('-', '+') }}|{{ ['x', 'y'] | join(',') }}|"
                   "{{ [3, 1, 2] | sort | join }}|{{ 'a\\tb'.expandtabs(2) }}|{{ ','.join(['p', 'q']) }}|"
                   "{% set ns = namespace(items=[]) %}{% for m in messages %}{% set ns.items = ns.items + [m.content] "
                   "%}{% endfor %}{{ ns.items | join }}")
    assert text == "a\n  b|a+b|x,y|123|a b|p,q|You are a helpful assistant.Hi"
