"""`python -m traffic_duplicator.options`, what bin/compile runs (options/cli.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.options.helpers import CORPUS
from tests.support import python_env
from traffic_duplicator.errors import UserError
from traffic_duplicator.options import (
    OptionsError,
    load_options,
)


def test_missing_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(OptionsError) as info:
        load_options(tmp_path / "gor.options")
    assert "file not found; create it" in str(info.value)
    assert isinstance(info.value, UserError)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "traffic_duplicator.options", *args],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=30,
        check=False,
    )


def test_cli_prints_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "gor.options"
    path.write_text(CORPUS["heroku-2015"] + "--output-http 'http://b.example.com|5'\n")
    result = run_cli(str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "output-http https://my-downstream-app.herokuapp.com",
        "output-http http://b.example.com (limit 5/s)",
        "deprecated --output-http-header (line 1): use --http-set-header",
    ]


def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "gor.options"
    path.write_text("--output-http http://a\n--middleware ./mw.sh\n")
    result = run_cli(str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"{path} line 2: --middleware needs a real gor binary (see vendor/gor/), or remove it\n"
    )
    with_gor = run_cli(str(path), "--gor-available")
    assert with_gor.returncode == 0, with_gor.stderr
    assert "needs-real-gor --middleware (line 2)" in with_gor.stdout


def test_cli_missing_file(tmp_path: Path) -> None:
    result = run_cli(str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_build_never_prints_a_password(tmp_path: Path) -> None:
    path = tmp_path / "gor.options"
    path.write_text(
        "--output-http 'https://mirror:pa55-Word@staging.example.com/base/|50%'\n"
        "--http-set-header 'Authorization: Bearer tok-Secret'\n"
    )
    result = run_cli(str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "output-http https://mirror:***@staging.example.com/base (limit 50%)"
    ]
    path.write_text(
        "--output-http 'https://mirror:pa55-Word@staging.example.com/?v=1'\n"
        "--http-set-header 'Authorization Bearer tok-Secret'\n"
    )
    refused = run_cli(str(path))
    assert refused.returncode == 2
    assert refused.stderr == (
        f"{path} line 1: --output-http: 'https://mirror:***@staging.example.com/?v=1' has a "
        "query (?v=1), which would not be applied to replayed requests; remove it, and add "
        "parameters with --http-set-param NAME=VALUE\n"
    )
    path.write_text(
        "--output-http https://staging.example.com\n"
        "--http-set-header 'Authorization Bearer tok-Secret'\n"
    )
    malformed = run_cli(str(path))
    assert malformed.stderr == (
        f"{path} line 2: --http-set-header: 'Authorization ***' is not 'Name: value', "
        "e.g. 'X-Mirrored: 1'\n"
    )
    for output in (result, refused, malformed):
        assert "pa55-Word" not in output.stdout + output.stderr
        assert "tok-Secret" not in output.stdout + output.stderr
