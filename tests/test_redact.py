"""Masking secrets (redact.py), and the log writer that applies it to every line."""

from __future__ import annotations

import io

import pytest

from traffic_duplicator.errors import UserError
from traffic_duplicator.logs import EventLog
from traffic_duplicator.redact import (
    is_secret_name,
    mask_argv,
    mask_counts,
    mask_header,
    mask_text,
    mask_url,
)


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


COMPARE_LINE = (
    'replayer | at=compare source=web.1 destination=http://u:hunter2@h route="GET /a" '
    'compared=3 fields="status=3,header:x-auth-token=2,header:www-authenticate=1,'
    'header:x-csrf-token=1" end=1'
)


def test_an_at_compare_line_keeps_the_counts_of_secret_named_fields() -> None:
    # The fields list holds names and counts, never a value (compare/lines.py).
    assert mask_text(COMPARE_LINE) == COMPARE_LINE.replace("hunter2", "***")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # Outside a compare line's fields list, a number is a secret like any value.
        ("x-auth-token=2", "x-auth-token=***"),
        ("at=compare pin=1234", "at=compare pin=***"),
        ('at=error fields="token=12"', 'at=error fields="token=***"'),
        # Inside it, only counts are kept: a URL's token or password is still masked.
        ('at=compare fields="x-token=abc,n=1"', 'at=compare fields="x-token=***,n=1"'),
        ('at=compare fields="a=1" e="/?token=abc"', 'at=compare fields="a=1" e="/?token=***"'),
        ('at=compare fields="body:http://u:pw@h=1"', 'at=compare fields="body:http://u:***@h=1"'),
    ],
)  # fmt: skip
def test_counts_are_kept_only_in_a_compare_line_s_fields_list(text: str, shown: str) -> None:
    assert mask_text(text) == shown


def test_mask_counts_masks_a_fields_list_as_the_compare_line_does() -> None:
    assert mask_counts("header:x-auth-token=2,status=1") == "header:x-auth-token=2,status=1"
    assert mask_counts("header:x-auth-token=2x") == "header:x-auth-token=***"
    assert mask_counts('token=1"') == 'token=***"'  # not a list: free text


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (
            ["python3", "x.py", "--password=PW3", "--api-token", "TOK2", "--db", "postgres://u:DBPW1@h/db"],
            "python3 x.py --password=*** --api-token *** --db postgres://u:***@h/db",
        ),
        (["app", "--password=a b", "--secret-key", "a b"], "app --password=*** --secret-key ***"),
        # A flag after a secret-named flag is no value; ordinary arguments stay as written.
        (
            ["app", "--auth-required", "--verbose", "a b", "--port", "5000"],
            "app --auth-required --verbose 'a b' --port 5000",
        ),
        (["a", "-p", "x", "--author", "ada", "--keyfile", "k"], "a -p x --author ada --keyfile k"),
    ],
)  # fmt: skip
def test_a_command_line_masks_secret_named_flags_in_both_forms(argv: list[str], shown: str) -> None:
    assert mask_argv(argv) == shown


def test_free_text_masks_a_secret_flag_s_inline_value_but_not_words_inside_names() -> None:
    assert mask_text("run --password=PW3 -token=t") == "run --password=*** -token=***"
    assert (
        mask_text("body:$.api-token=3,body:$.a.--token=4")
        == "body:$.api-token=3,body:$.a.--token=4"
    )


def test_every_user_error_is_masked() -> None:
    error = UserError("X='http://deploy:s3cretpass@h' names nothing; token=abc")
    assert str(error) == "X='http://deploy:***@h' names nothing; token=***"
