"""URL credentials in messages (issue 21 §4): a password with an unescaped ``@`` is hidden whole."""

from __future__ import annotations

from runtime.redact import redact_credentials


def test_a_password_holding_an_at_sign_is_hidden_whole() -> None:
    text = "cannot connect to http://alice:p@ss@127.0.0.1:9/v1 (refused)"
    assert redact_credentials(text) == "cannot connect to http://***@127.0.0.1:9/v1 (refused)"


def test_an_at_sign_in_the_path_or_query_is_not_taken_for_credentials() -> None:
    for text in ("http://127.0.0.1:9/v1/models/a@b", "http://127.0.0.1:9/v1?user=a@b", "http://h/#x@y"):
        assert redact_credentials(text) == text
    assert redact_credentials("see https://u:pw@h/x and http://v:q@@k/y") == "see https://***@h/x and http://***@k/y"
