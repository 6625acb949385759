"""Go's RE2 syntax and replacement templates (options/goregex.py)."""

from __future__ import annotations

from tests.options.helpers import error_of
from traffic_duplicator.options import (
    go_replace_all,
    parse_header_regex,
    parse_header_rewrite,
    parse_url_rewrite,
)


def test_go_replacement_templates() -> None:
    rewrite = parse_url_rewrite("/v1/user/([^\\/]+)/ping:/v2/user/$1/ping")
    assert go_replace_all(rewrite.regex, rewrite.target, b"/v1/user/42/ping") == b"/v2/user/42/ping"
    header = parse_header_rewrite("Host: (.*).example.com,${1}.beta.example.com$$")
    assert go_replace_all(header.regex, header.target, b"a.example.com") == b"a.beta.example.com$"
    # Go reads `$1x` as a group named "1x": unknown, so empty.
    unknown = parse_url_rewrite("(a):$1x")
    assert go_replace_all(unknown.regex, unknown.target, b"a") == b""


def test_bad_regex_is_named() -> None:
    assert "is not a valid regular expression" in error_of("--output-null --http-allow-url '(['")


def test_posix_classes_from_re2() -> None:
    allow = parse_header_regex("X-Id: ^[[:digit:]]+$").regex
    assert allow.search(b"123") and not allow.search(b"12a")
