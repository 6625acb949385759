"""The typed flag table (options/flags.py)."""

from __future__ import annotations

import re

import pytest

from traffic_duplicator.options import (
    BY_NAME,
    FLAGS,
    Kind,
    Listen,
    OutputTarget,
    Scope,
    UrlRewrite,
    flags,
    parse_argv,
)


def test_table_is_consistent() -> None:
    assert len(BY_NAME) == len(FLAGS)
    for flag in FLAGS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", flag.name)
        if flag.builtin and flag.kind is Kind.VALUE:
            assert flag.parse is not None and flag.example, flag.name
    assert {f.name for f in FLAGS if f.scope is Scope.INPUT} == {
        "input-http",
        "input-tcp",
        "input-file",
    }


def test_values_come_out_typed() -> None:
    options = parse_argv(
        [
            "--input-http",
            "127.0.0.1:1|10",
            "--output-http",
            "staging.example.com|25%",
            "--output-http-timeout",
            "300ms",
            "--output-http-timeout",
            "2s",
            "--verbose",
            "--http-rewrite-url",
            "/a(.*):/b$1",
        ]
    )
    (listen,) = options.values(flags.INPUT_HTTP)
    assert isinstance(listen, Listen) and listen.address.port == 1
    (target,) = options.values(flags.OUTPUT_HTTP)
    assert isinstance(target, OutputTarget) and target.host == "staging.example.com"
    assert options.value(flags.OUTPUT_HTTP_TIMEOUT, 5.0) == 2.0  # the last one wins, as in gor
    assert options.value(flags.EXIT_AFTER, 0.0) == 0.0  # absent: the default
    assert options.value(flags.VERBOSE, 0) == 1  # written alone: its implicit value
    (rewrite,) = options.values(flags.HTTP_REWRITE_URL)
    assert isinstance(rewrite, UrlRewrite) and rewrite.target == b"/b$1"


def test_a_flag_written_alone_has_a_value_only_if_it_may() -> None:
    assert flags.STATS.value_of(None) is True
    assert flags.STATS.value_of("false") is False
    with pytest.raises(ValueError, match="--output-http was given without a value"):
        flags.OUTPUT_HTTP.value_of(None)
