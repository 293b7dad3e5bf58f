"""Credentials in ``HF_ENDPOINT`` (a mirror's ``https://user:secret@host``) are never echoed.

Every failure that names the endpoint is provoked against the local hub (tests/hubserver.py)
with a user name and password in its URL; neither may appear in the message, the CLI's output
or rt's logs, while the endpoint's host still does.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime.cli import cli
from runtime.errors import DownloadError
from runtime.models.hub import download_gguf
from runtime.redact import redact_credentials
from tests.hubserver import GGUF_FILE, GGUF_REPO, HubServer

SECRET = "s3cret-Pa55"


def _with_credentials(url: str) -> str:
    return url.replace("http://", f"http://mirror-user:{SECRET}@")


def _assert_redacted(text: str, host_url: str) -> None:
    assert SECRET not in text and "mirror-user" not in text
    assert host_url.replace("http://", "http://***@") in text


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def test_a_missing_repo_names_the_mirror_without_its_password(
        hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("HF_ENDPOINT", _with_credentials(hub.url))
    with pytest.raises(DownloadError, match=r"was not found on .*\(HTTP 404\)") as caught:
        download_gguf("nobody/nothing", "Q4_K_M", tmp_path)
    _assert_redacted(str(caught.value), hub.url)
    assert SECRET not in logs.text


def test_an_unreachable_mirror_is_named_without_its_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture) -> None:
    with HubServer() as gone:
        url = gone.url
    monkeypatch.setenv("HF_ENDPOINT", _with_credentials(url))  # nothing listens there any more
    with pytest.raises(DownloadError, match="cannot reach the hub at") as caught:
        download_gguf("o/r-GGUF", "Q4_K_M", tmp_path)
    _assert_redacted(str(caught.value), url)
    assert SECRET not in logs.text


def test_a_server_error_through_the_cli_shows_no_password(
        gguf_repo: HubServer, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("HF_ENDPOINT", _with_credentials(gguf_repo.url))
    gguf_repo.status[GGUF_FILE] = 500
    result = CliRunner().invoke(cli, ["convert", "--hf", GGUF_REPO])
    assert result.exit_code == 1
    assert "HTTP 500" in result.stderr
    _assert_redacted(result.stderr, gguf_repo.url)
    assert SECRET not in result.stdout and SECRET not in logs.text


def test_a_download_through_a_mirror_with_credentials_still_works(
        gguf_repo: HubServer, smollm2_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", _with_credentials(gguf_repo.url))
    downloaded = download_gguf(GGUF_REPO, "Q4_K_M", tmp_path)
    assert downloaded.path.stat().st_size == smollm2_path.stat().st_size
    # the mirror gets its credentials (HTTP basic auth from the URL), only they are never shown
    expected = "Basic " + base64.b64encode(f"mirror-user:{SECRET}".encode()).decode()
    assert gguf_repo.gets_of(GGUF_FILE)[0].headers["authorization"] == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("https://user:pw@hub.example/api", "https://***@hub.example/api"),
    ("see http://tok@127.0.0.1:8080/x and https://a:b@c.d", "see http://***@127.0.0.1:8080/x and https://***@c.d"),
    ("https://hub.example/a@b", "https://hub.example/a@b"),  # an @ in the path is not a password
    ("no url here", "no url here"),
])
def test_redaction_hides_user_and_password_only(text: str, expected: str) -> None:
    assert redact_credentials(text) == expected
