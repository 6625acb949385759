"""Scalar values: durations, counts, sizes, limits (options/values.py)."""

from __future__ import annotations

import pytest

from traffic_duplicator.options import (
    parse_duration,
    parse_size,
)


def test_durations_are_go_syntax() -> None:
    assert parse_duration("5s") == 5
    assert parse_duration("1m30s") == 90
    assert parse_duration("300ms") == pytest.approx(0.3)
    assert parse_duration("1.5h") == 5400
    assert parse_duration("0") == 0
    for bad in ("5", "", "s", "5 s", "-1s", "5sec"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_sizes() -> None:
    assert parse_size("32mb") == 32 << 20
    assert parse_size("1k") == 1024
    assert parse_size("4096") == 4096


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("5MB", 5 << 20),  # gor's spellings (internal/size)
        ("64kb", 64 << 10),
        ("1tb", 1 << 40),
        ("512k", 512 << 10),  # the tee proxy's --mirror-buffer spellings
        ("1MiB", 1 << 20),
        ("2G", 2 << 30),
        ("1.5m", 3 << 19),
        ("100b", 100),
        ("7 kb", 7 << 10),
    ],
)
def test_one_size_grammar_for_options_and_the_proxy(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "lots", "-1k", "1x", "1ib", "k", "1 k b"])
def test_sizes_that_are_not_sizes(bad: str) -> None:
    with pytest.raises(ValueError, match=r"is not a size, e\.g\. 32mb"):
        parse_size(bad)
