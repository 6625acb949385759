"""What the build prints about an options file (options/summary.py)."""

from __future__ import annotations

import pytest

from traffic_duplicator.options import (
    parse_options,
    summary,
)


@pytest.mark.parametrize(
    ("old", "new", "value"),
    [
        ("output-http-header", "http-set-header", "X-A: 1"),
        ("output-http-method", "http-allow-method", "GET"),
        ("output-http-url-regexp", "http-allow-url", "^/api"),
        ("output-http-rewrite-url", "http-rewrite-url", "/a:/b"),
        ("output-http-header-filter", "http-allow-header", "X-A: ^1"),
        ("output-http-header-hash-filter", "http-header-limiter", "User-Id: 1/4"),
    ],
)
def test_old_names_are_aliases_with_a_notice(old: str, new: str, value: str) -> None:
    options = parse_options(f"--output-null --{old} '{value}'")
    flag = options.flags[1]
    assert (flag.name, flag.spelling, flag.deprecated_alias) == (new, f"--{old}", True)
    assert f"deprecated --{old} (line 1): use --{new}" in summary(options)
