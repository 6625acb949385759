"""`--output-http` URLs (options/urls.py)."""

from __future__ import annotations

import pytest

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
