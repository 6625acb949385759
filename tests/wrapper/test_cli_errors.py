"""Every bad input gives one line and an exit status before anything starts (real runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.wrapper.harness import (
    FIXTURE_BIN,
    example_app,
    port_block,
    run_wrapper,
    write_options,
)
from traffic_duplicator.addr import listen_socket

OUTPUT = "--output-http http://127.0.0.1:9"


def assert_one_line(result: subprocess.CompletedProcess[str], status: int, *fragments: str) -> str:
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("start-traffic-duplicator: error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    write_options(tmp_path, OUTPUT)
    return tmp_path


def test_missing_command(app_dir: Path) -> None:
    assert_one_line(run_wrapper(app_dir, []), 2, "no command given", "usage:")


def test_unknown_wrapper_option(app_dir: Path) -> None:
    assert_one_line(run_wrapper(app_dir, ["--verbose", "rails"]), 2, "unknown option --verbose")


def test_missing_port(app_dir: Path) -> None:
    assert_one_line(run_wrapper(app_dir, example_app(), unset=["PORT"]), 2, "PORT is not set")


def test_bad_port(app_dir: Path) -> None:
    assert_one_line(
        run_wrapper(app_dir, example_app(), PORT="http"), 2, "PORT 'http' is not a TCP port"
    )


def test_missing_options_file(tmp_path: Path) -> None:
    assert_one_line(
        run_wrapper(tmp_path, example_app()),
        2,
        "config/gor.options: file not found",
        "--output-http",
    )


def test_options_path_comes_from_the_environment(app_dir: Path) -> None:
    result = run_wrapper(app_dir, example_app(), TRAFFIC_DUPLICATOR_OPTIONS="elsewhere.options")
    assert_one_line(result, 2, "elsewhere.options: file not found")


def test_bad_options_line_names_file_line_and_flag(app_dir: Path) -> None:
    write_options(app_dir, OUTPUT, "--output-htp http://x")
    assert_one_line(
        run_wrapper(app_dir, example_app()),
        2,
        "config/gor.options line 2",
        "--output-htp",
        "did you mean --output-http?",
    )


def test_options_without_an_output(app_dir: Path) -> None:
    write_options(app_dir, "--http-allow-method GET")
    assert_one_line(run_wrapper(app_dir, example_app()), 2, "no output")


def test_options_that_need_a_real_gor_name_the_flag_and_vendor_gor(app_dir: Path) -> None:
    write_options(app_dir, OUTPUT, "--middleware ./filter.sh")
    assert_one_line(run_wrapper(app_dir, example_app()), 2, "--middleware", "vendor/gor/")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("TRAFFIC_DUPLICATOR_REPLAYER", "goreplay"), ("TRAFFIC_DUPLICATOR_PROXY", "nginx")],
)
def test_unknown_engine_name(app_dir: Path, variable: str, value: str) -> None:
    result = run_wrapper(app_dir, example_app(), extra={variable: value})
    assert_one_line(result, 2, f"{variable}='{value}' is not an engine", "auto, builtin")


def test_em_proxy_asked_for_but_not_installed(app_dir: Path) -> None:
    result = run_wrapper(app_dir, example_app(), TRAFFIC_DUPLICATOR_PROXY="em-proxy")
    assert_one_line(
        result, 2, "neither in Gemfile.lock nor on PATH", "TRAFFIC_DUPLICATOR_PROXY=builtin"
    )


def test_gor_asked_for_but_not_found(app_dir: Path) -> None:
    result = run_wrapper(app_dir, example_app(), TRAFFIC_DUPLICATOR_REPLAYER="gor")
    assert_one_line(result, 2, "no gor binary found", "bin/gor", "vendor/gor/gor")


def test_gor_setting_that_names_no_file(app_dir: Path) -> None:
    result = run_wrapper(app_dir, example_app(), TRAFFIC_DUPLICATOR_GOR=str(app_dir / "nope"))
    assert_one_line(result, 2, "TRAFFIC_DUPLICATOR_GOR=", "is not an executable file")


def with_new_gor_asked_for(app_dir: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """The wrapper with TRAFFIC_DUPLICATOR_REPLAYER=gor, a modern (fake) gor, and `settings`."""
    return run_wrapper(
        app_dir,
        example_app(),
        fixtures_on_path=True,
        TRAFFIC_DUPLICATOR_REPLAYER="gor",
        TRAFFIC_DUPLICATOR_GOR=str(FIXTURE_BIN / "gor"),
        FAKE_GOR_VERSION="new",
        extra=settings,
    )


def test_em_proxy_with_a_new_gor_is_refused(app_dir: Path) -> None:
    result = with_new_gor_asked_for(app_dir, TRAFFIC_DUPLICATOR_PROXY="em-proxy")
    assert_one_line(result, 2, "em-proxy can only feed a replayer with --input-http")


@pytest.mark.parametrize(
    ("offset", "variable"),
    [(1, "TRAFFIC_DUPLICATOR_APP_PORT"), (2, "TRAFFIC_DUPLICATOR_REPLAYER_PORT"), (0, "$PORT")],
)
def test_port_in_use_names_the_port_and_what_moves_it(
    app_dir: Path, offset: int, variable: str
) -> None:
    port = port_block()
    taken = port + offset
    holder = listen_socket(taken, "127.0.0.1")
    try:
        result = run_wrapper(app_dir, example_app(), PORT=str(port))
        assert_one_line(result, 2, f"port {taken} is already in use", variable)
    finally:
        holder.close()


def test_command_not_found_exits_127_like_a_shell(app_dir: Path) -> None:
    assert_one_line(
        run_wrapper(app_dir, ["no-such-server", "-p", "$PORT"]),
        127,
        "no-such-server: command not found",
    )


def test_command_not_executable_exits_126(app_dir: Path) -> None:
    script = app_dir / "server.sh"
    script.write_text("#!/bin/sh\n")
    assert_one_line(run_wrapper(app_dir, [str(script)]), 126, "permission denied")


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("TRAFFIC_DUPLICATOR_ENABLED", "maybe", "use false, 0, no or off"),
        ("TRAFFIC_DUPLICATOR_SHUTDOWN_TIMEOUT", "soon", "not a number of seconds"),
        ("TRAFFIC_DUPLICATOR_RESTART_BACKOFF_BASE", "-1", "not a number of seconds"),
        (
            "TRAFFIC_DUPLICATOR_APP_PORT",
            "99999",
            "TRAFFIC_DUPLICATOR_APP_PORT '99999' is not a TCP port",
        ),
    ],
)
def test_bad_setting_names_the_variable(
    app_dir: Path, variable: str, value: str, fragment: str
) -> None:
    result = run_wrapper(app_dir, example_app(), extra={variable: value})
    assert_one_line(result, 2, fragment)


def test_help_and_version_exit_zero(app_dir: Path) -> None:
    for word in ("--help", "-h"):
        result = run_wrapper(app_dir, [word])
        assert result.returncode == 0
        assert result.stdout.startswith("usage: start-traffic-duplicator COMMAND")
    result = run_wrapper(app_dir, ["--version"])
    assert result.returncode == 0
    assert result.stdout.startswith("start-traffic-duplicator ")


def test_help_starts_nothing_and_needs_nothing(tmp_path: Path) -> None:
    # No options file, no $PORT, a command that does not exist: help reads none of them.
    for word in ("--help", "-h", "--version"):
        result = run_wrapper(tmp_path, [word, "no-such-program"], unset=("PORT",))
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""


def test_console_script_and_module_are_the_same_command(app_dir: Path) -> None:
    script = Path(sys.executable).parent / "start-traffic-duplicator"
    via_script = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, check=False
    )
    via_module = run_wrapper(app_dir, ["--version"])
    assert via_script.returncode == via_module.returncode == 0
    assert via_script.stdout == via_module.stdout


def test_comparison_with_gor_asked_for_is_refused_with_the_reason(app_dir: Path) -> None:
    result = with_new_gor_asked_for(app_dir, TRAFFIC_DUPLICATOR_COMPARE="on")
    assert_one_line(
        result,
        2,
        "TRAFFIC_DUPLICATOR_COMPARE=on needs the built-in proxy and replayer, "
        "but TRAFFIC_DUPLICATOR_REPLAYER=gor",
    )


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("TRAFFIC_DUPLICATOR_COMPARE_BASELINE", "3", "is not the position of an --output-http"),
        ("TRAFFIC_DUPLICATOR_COMPARE_BASELINE", "http://elsewhere", "names no --output-http"),
        ("TRAFFIC_DUPLICATOR_COMPARE_INTERVAL", "0", "not a number of seconds from 1"),
    ],
)
def test_a_bad_comparison_setting_stops_the_boot_with_one_line(
    app_dir: Path, variable: str, value: str, fragment: str
) -> None:
    result = run_wrapper(
        app_dir, example_app(), extra={"TRAFFIC_DUPLICATOR_COMPARE": "on", variable: value}
    )
    assert_one_line(result, 2, variable, fragment)


@pytest.mark.parametrize(
    ("baseline", "fragment"),
    [
        ("http://deploy:s3cretpass@127.0.0.1:18300", "names no --output-http"),
        ("http://deploy:s3cretpass@127.0.0.1:18300:9", "is not a URL"),
    ],
)
def test_a_bad_baseline_url_is_shown_without_its_password(
    app_dir: Path, baseline: str, fragment: str
) -> None:
    extra = {"TRAFFIC_DUPLICATOR_COMPARE": "on", "TRAFFIC_DUPLICATOR_COMPARE_BASELINE": baseline}
    line = assert_one_line(run_wrapper(app_dir, example_app(), extra=extra), 2, fragment)
    assert "s3cretpass" not in line
    assert "'http://deploy:***@127.0.0.1:18300" in line
