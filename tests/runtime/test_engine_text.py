"""The text pipeline between token bytes and the caller: UTF-8 split across tokens, stop strings."""

from __future__ import annotations

from runtime.llm.generation import TextAssembler


def test_multibyte_character_split_across_tokens_is_emitted_whole() -> None:
    text = TextAssembler()
    assert text.feed("é".encode()[:1]) == ""
    assert text.feed("é".encode()[1:] + b"t") == "ét"
    assert text.finish() == ""
    assert text.text == "ét"


def test_text_that_may_start_a_stop_string_is_held_back() -> None:
    text = TextAssembler(stop=("\nUser:",))
    assert text.feed(b"Paris.") == "Paris."
    assert text.feed(b"\nUs") == ""  # could be the start of the stop string
    assert text.feed(b"e") == ""
    assert text.feed(b"r:") == ""
    assert text.stopped
    assert text.text == "Paris."


def test_held_back_text_is_released_when_it_is_not_a_stop_string() -> None:
    text = TextAssembler(stop=("STOP",))
    assert text.feed(b"ST") == ""
    assert text.feed(b"ay") == "STay"
    assert text.feed(b" S") == " "
    assert text.finish() == "S"
    assert not text.stopped


def test_earliest_of_several_stop_strings_wins() -> None:
    text = TextAssembler(stop=("c", "ab"))
    assert text.feed(b"xxabc") == "xx"
    assert text.stopped
    assert text.feed(b"more") == ""
