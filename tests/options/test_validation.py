"""The rules an options file must follow, each once (options/validation.py)."""

from __future__ import annotations

import pytest

from tests.options.helpers import error_of
from traffic_duplicator.options import (
    parse_argv,
    parse_options,
    validate_options_file,
)


@pytest.mark.parametrize(
    "flag", ["--middleware 'node mw.js'", "--output-tcp x:1", "--prettify-http"]
)
def test_real_gor_flags_are_rejected_without_gor(flag: str) -> None:
    message = error_of(f"--output-http http://a {flag}")
    assert message.endswith("needs a real gor binary (see vendor/gor/), or remove it")
    validate_options_file(parse_options(f"--output-http http://a {flag}"), gor_available=True)


def test_output_kafka_is_named_and_points_to_real_gor() -> None:
    message = error_of("--output-kafka x")
    assert "did you mean --output-kafka-host?" in message
    assert "real gor binary" in message


@pytest.mark.parametrize("flag", ["--input-raw :80", "--input-http :80", "--input-tcp :1"])
def test_inputs_do_not_belong_in_the_options_file(flag: str) -> None:
    message = error_of(f"--output-http http://a {flag}", gor_available=True)
    assert "the wrapper supplies the input" in message


def test_extension_flags_are_command_line_only() -> None:
    assert "not a GoReplay flag" in error_of("--output-null --flush-timeout 5s")
    assert parse_argv(["--flush-timeout", "5s"]).flags[0].name == "flush-timeout"


def test_no_output_is_an_error() -> None:
    assert error_of("--http-set-header 'X: 1'") == (
        "config/gor.options: no output; add e.g. --output-http https://staging.example.com"
    )


def test_file_output_features_we_do_not_have_need_gor() -> None:
    assert "needs a real gor" in error_of("--output-file /tmp/%Y%m%d.gor")
    assert "needs a real gor" in error_of("--output-file /tmp/x.gor.gz")
    validate_options_file(parse_options("--output-file /tmp/x.gor"))


def test_goreplay_readme_capture_example_points_at_the_input() -> None:
    message = error_of("--input-raw :8000 --output-http http://staging.com", gor_available=True)
    assert message.startswith("config/gor.options line 1: --input-raw does not belong")
