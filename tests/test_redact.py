"""Masking secrets (redact.py), and the log writer that applies it to every line."""

from __future__ import annotations

import io

import pytest

from traffic_duplicator.logs import EventLog
from traffic_duplicator.redact import is_secret_name, mask_header, mask_text, mask_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:s3cret@h.example.com/base", "http://user:***@h.example.com/base"),
        ("https://u:p@ss:w@rd@h:8443", "https://u:***@h:8443"),  # up to the last @
        ("http://user@h.example.com", "http://user@h.example.com"),  # no password
        ("http://h.example.com:8080/a@b", "http://h.example.com:8080/a@b"),  # @ in the path
        ("--output-http 'http://u:pw@h|10'", "--output-http 'http://u:***@h|10'"),
    ],
)
def test_url_passwords_are_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        *[(n, True) for n in ("Authorization", "proxy-authorization", "Cookie", "Set-Cookie")],
        *[(n, True) for n in ("X-Api-Key", "api_key", "X-Auth-Token", "password", "session_id")],
        *[(n, False) for n in ("Host", "User-Agent", "X-Request-Id", "Content-Type", "page")],
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret
    assert mask_header(name, "v") == ("***" if secret else "v")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Authorization: Basic dXNlcjpwdw==", "Authorization: ***"),
        ("Cookie: a=b; session=c", "Cookie: ***"),
        ("GET /login?password=hunter2&next=/ HTTP/1.1", "GET /login?password=***&next=/ HTTP/1.1"),
        ("line 3: --http-set-header 'X-Api-Key: k1'", "line 3: --http-set-header 'X-Api-Key: ***'"),
        ("connect: TLS certificate: self-signed", "connect: TLS certificate: self-signed"),
        ("http://auth:pw@h/x", "http://auth:***@h/x"),
    ],
)  # fmt: skip
def test_free_text_is_masked(text: str, shown: str) -> None:
    assert mask_text(text) == shown


def test_every_log_line_is_masked_whoever_writes_it() -> None:
    stream = io.StringIO()
    EventLog("src", stream).event(
        at="error", output="http://u:hunter2@h", error="Authorization: Bearer tok", n=3
    )
    assert stream.getvalue() == (
        'src at=error output=http://u:***@h error="Authorization: ***" n=3\n'
    )
