"""Chat templates rendered like Hugging Face's apply_chat_template (pure Jinja2, no model)."""

from __future__ import annotations

import pytest

from runtime.errors import InputError, UnsupportedModelError
from runtime.llm.chat_template import plain_prompt, question_messages, render_chat

GEMMA_LIKE = (
    "{{ bos_token }}{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('roles must alternate') }}{% endif %}"
    "<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def test_template_gets_bos_and_generation_prompt() -> None:
    text = render_chat(GEMMA_LIKE, [{"role": "user", "content": "Hi"}], bos_token="<bos>")
    assert text == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"


def test_raise_exception_in_a_template_is_an_input_error() -> None:
    with pytest.raises(InputError, match="roles must alternate"):
        render_chat(GEMMA_LIKE, [{"role": "assistant", "content": "Hi"}])


def test_no_template_is_a_clear_error() -> None:
    with pytest.raises(UnsupportedModelError, match="has no chat template"):
        render_chat(None, question_messages("Hi"), model_name="base.gguf")


def test_broken_template_is_a_clear_error() -> None:
    with pytest.raises(UnsupportedModelError, match="does not parse"):
        render_chat("{% for %}", question_messages("Hi"))


def test_plain_prompt_for_base_models_has_stop_strings() -> None:
    prompt, stops = plain_prompt(question_messages("What is 2+2?", system="Be brief."))
    assert prompt == "Be brief.\n\nQuestion: What is 2+2?\nAnswer:"
    assert "\nQuestion:" in stops
