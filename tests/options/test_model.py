"""Reading flags from words: spellings, values, positions and mistakes (options/model.py)."""

from __future__ import annotations

import pytest

from tests.options.helpers import error_of
from traffic_duplicator.options import (
    OptionsError,
    parse_argv,
    parse_options,
)


def test_equals_and_space_forms_and_single_dash_are_the_same_flag() -> None:
    options = parse_options(
        "-output-http=http://a --output-http http://b\n-stats --split-output=true"
    )
    assert [(f.name, f.spelling, f.value, f.line) for f in options.flags] == [
        ("output-http", "-output-http", "http://a", 1),
        ("output-http", "--output-http", "http://b", 1),
        ("stats", "-stats", None, 2),
        ("split-output", "--split-output", "true", 2),
    ]
    assert options.argv == (
        "-output-http=http://a",
        "--output-http",
        "http://b",
        "-stats",
        "--split-output=true",
    )
    assert options.outputs() == ("http://a", "http://b")
    assert options.has("split-output")


def test_boolean_false_turns_a_flag_off() -> None:
    assert not parse_options("--output-null --split-output=false").has("split-output")


def test_unknown_flag_suggests_the_closest_name() -> None:
    assert error_of("--output-http http://a\n\n--output-htp x") == (
        "config/gor.options line 3: unknown flag --output-htp (did you mean --output-http?)"
    )


def test_unknown_flag_without_a_near_name() -> None:
    assert "not a GoReplay flag" in error_of("--frobnicate")


def test_http_header_from_goreplays_docs_points_to_http_set_header() -> None:
    assert "did you mean --http-set-header?" in error_of("--http-header 'X: 1'")


def test_a_word_after_a_boolean_flag_is_an_error_not_silently_ignored() -> None:
    # Go's flag package stops at the first non-flag word and ignores the rest.
    message = error_of("--output-http http://a --split-output true --http-allow-method GET")
    assert "unexpected word 'true' after --split-output" in message


def test_missing_value_and_flag_as_value() -> None:
    assert error_of("--output-http") == (
        "config/gor.options line 1: --output-http needs a value, "
        "e.g. --output-http https://staging.example.com"
    )
    assert "needs a value before --stats" in error_of("--output-http --stats")


def test_verbose_takes_an_optional_level() -> None:
    options = parse_options("--verbose --output-null\n--verbose 2 --verbose=true")
    assert [f.value for f in options.all("verbose")] == [None, "2", "true"]


def test_argv_errors_name_the_argument() -> None:
    with pytest.raises(OptionsError) as info:
        parse_argv(["--input-http", ":1", "--output-http-timeout", "x"], source="replayer")
    assert str(info.value).startswith("replayer argument 3: --output-http-timeout:")


def test_goreplay_unquoted_rewrite_header_example_is_a_clear_error() -> None:
    # The help text's `--http-rewrite-header Host: (.*)...` is two words in any shell.
    message = error_of("--output-null --http-rewrite-header Host: (.*).example.com,$1.b.com")
    assert "line 1: --http-rewrite-header:" in message
    assert "'Name: regex,replacement'" in message
