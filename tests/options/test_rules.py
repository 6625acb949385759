"""Header, filter and rewrite values (options/rules.py)."""

from __future__ import annotations

from traffic_duplicator.options import (
    parse_hash_limit,
    parse_header_regex,
)


def test_header_regex_accepts_both_spacings() -> None:
    assert parse_header_regex("Api-Version: ^v1").regex.search(b"v1.2")
    assert parse_header_regex("api-version:^v1").name == "api-version"


def test_hash_limits_accept_percent_and_old_fraction() -> None:
    assert parse_hash_limit("user-id: 25%").percent == 25
    assert parse_hash_limit("user-id:1/4").percent == 25
