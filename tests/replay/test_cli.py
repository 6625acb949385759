"""The replayer's command line as users type it out of habit: --help and --version."""

from __future__ import annotations

import pytest

from tests.support import free_port, run_module
from traffic_duplicator import __version__
from traffic_duplicator.options import FLAGS
from traffic_duplicator.replay.usage import asks_for, usage


@pytest.mark.parametrize("word", ["-h", "-help", "--help"])
def test_help_prints_usage_and_starts_nothing(word: str) -> None:
    port = free_port()
    result = run_module(
        "traffic_duplicator.replay", word, "--input-http", f"127.0.0.1:{port}", "--output-null"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m traffic_duplicator.replay --input-http ")
    assert result.stderr == ""  # no at=start: nothing listened


def test_version_prints_the_package_version() -> None:
    result = run_module("traffic_duplicator.replay", "--version")
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout == f"python -m traffic_duplicator.replay (traffic-duplicator) {__version__}\n"
    )


def test_usage_names_every_flag_of_the_table_and_fits_the_terminal() -> None:
    text = usage()
    for flag in FLAGS:
        assert f"--{flag.name}" in text, flag.name
    assert max(len(line) for line in text.splitlines()) <= 100


def test_only_a_leading_word_asks_for_help() -> None:
    assert asks_for(["--help"]) == "help"
    assert asks_for(["--version"]) == "version"
    assert asks_for([]) is None
    # As a value (a URL path to filter, say) it is just a value.
    assert asks_for(["--http-allow-url", "--help"]) is None
