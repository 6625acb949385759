"""`--output-http` URLs (options/urls.py)."""

from __future__ import annotations

import pytest

from tests.options.helpers import error_of
from traffic_duplicator.options import (
    LimitKind,
    parse_output_http,
)


def test_output_urls_and_limits() -> None:
    target = parse_output_http("staging.com|10")
    assert (target.url, target.port, target.limit and target.limit.kind) == (
        "http://staging.com",
        80,
        LimitKind.RATE,
    )
    percent = parse_output_http("https://s.example.com:8443/base/|25%")
    assert (percent.scheme, percent.port, percent.path, percent.host_header) == (
        "https",
        8443,
        "/base",
        "s.example.com:8443",
    )
    assert percent.limit is not None and percent.limit.value == 25
    for bad in ("ftp://x", "http://", "http://a|x", "http://a|150%", "|10"):
        with pytest.raises(ValueError):
            parse_output_http(bad)


# Each part of an output URL, applied: (URL as written, URL as shown, host, port, path
# prefix, Host header gor's rule gives, Authorization sent).
APPLIED = [
    (
        "staging.example.com",
        "http://staging.example.com",
        "staging.example.com",
        80,
        "",
        "staging.example.com",
        None,
    ),
    (
        "HTTPS://Staging.Example.com",
        "https://Staging.Example.com",
        "staging.example.com",
        443,
        "",
        "staging.example.com",
        None,
    ),
    (
        "http://h.example.com:8080",
        "http://h.example.com:8080",
        "h.example.com",
        8080,
        "",
        "h.example.com:8080",
        None,
    ),
    (
        "https://h.example.com:443/",
        "https://h.example.com:443",
        "h.example.com",
        443,
        "",
        "h.example.com",
        None,
    ),
    (
        "http://h.example.com/base/",
        "http://h.example.com/base",
        "h.example.com",
        80,
        "/base",
        "h.example.com",
        None,
    ),
    (
        "http://h.example.com/a/b",
        "http://h.example.com/a/b",
        "h.example.com",
        80,
        "/a/b",
        "h.example.com",
        None,
    ),
    # gor 0.x: a bare :PORT dials the local system.
    (":8080", "http://127.0.0.1:8080", "127.0.0.1", 8080, "", "127.0.0.1:8080", None),
    ("http://[::1]:8081/x", "http://[::1]:8081/x", "::1", 8081, "/x", "[::1]:8081", None),
    (
        "bücher.example",
        "http://bücher.example",
        "xn--bcher-kva.example",
        80,
        "",
        "xn--bcher-kva.example",
        None,
    ),
    # Userinfo: Basic credentials on every request (gor 1.x http_client.go), never shown.
    (
        "http://user:s3cret@h.example.com",
        "http://user:***@h.example.com",
        "h.example.com",
        80,
        "",
        "h.example.com",
        b"Basic dXNlcjpzM2NyZXQ=",
    ),
    (
        "https://user:p%40ss@h.example.com/b",
        "https://user:***@h.example.com/b",
        "h.example.com",
        443,
        "/b",
        "h.example.com",
        b"Basic dXNlcjpwQHNz",
    ),
    (
        "http://user@h.example.com",
        "http://user@h.example.com",
        "h.example.com",
        80,
        "",
        "h.example.com",
        b"Basic dXNlcjo=",
    ),
]


@pytest.mark.parametrize("row", APPLIED, ids=[row[0] for row in APPLIED])
def test_each_part_of_an_output_url_is_applied(
    row: tuple[str, str, str, int, str, str, bytes | None],
) -> None:
    text, shown, host, port, path, host_header, authorization = row
    target = parse_output_http(text)
    assert (target.url, target.host, target.port, target.path) == (shown, host, port, path)
    assert (target.host_header, target.authorization) == (host_header, authorization)
    assert "s3cret" not in repr(target) and "p%40ss" not in repr(target)


# What cannot be applied is refused at build and boot, in one line with the fix.
REFUSED = [
    (
        "http://h.example.com/?a=1",
        (
            "'http://h.example.com/?a=1' has a query (?a=1), which would "
            "not be applied to replayed requests; remove it, and add "
            "parameters with --http-set-param NAME=VALUE"
        ),
    ),
    (
        "http://h.example.com/#top",
        ("'http://h.example.com/#top' has a fragment (#top), which is never sent; remove it"),
    ),
    (
        "http://@h.example.com",
        (
            "'http://@h.example.com' has an empty user before @; remove "
            "the @ or write user:password@"
        ),
    ),
    (
        "http://h.example.com:0",
        ("'http://h.example.com:0': port 0 cannot be connected to; write the port, 1-65535"),
    ),
    (
        "http://h.example.com:99999",
        ("'http://h.example.com:99999' is not a URL (Port out of range 0-65535)"),
    ),
    ("http://", "'http://' has no host; write e.g. https://staging.example.com"),
    (
        "'http://ex ample.com'",
        (
            "'http://ex ample.com': 'ex ample.com' is not a host name; "
            "write e.g. staging.example.com"
        ),
    ),
    ("ftp://h.example.com", "'ftp://h.example.com' is not an http:// or https:// URL"),
    (
        "http://user:s3cret@h.example.com/?k=1",
        (
            "'http://user:***@h.example.com/?k=1' has a query (?k=1), "
            "which would not be applied to replayed requests; remove it, "
            "and add parameters with --http-set-param NAME=VALUE"
        ),
    ),
    (
        "'http://user:s3|cret@h.example.com'",
        (
            "'http://user:***@h.example.com': after the last | comes a "
            "limit, N or N% (e.g. |10 or |25%); write a | inside the URL "
            "as %7C"
        ),
    ),
]


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_what_an_output_url_cannot_mean_is_refused_in_one_line(text: str, message: str) -> None:
    assert error_of(f"--output-null\n--output-http {text}") == (
        f"config/gor.options line 2: --output-http: {message}"
    )
    assert "s3" not in message
