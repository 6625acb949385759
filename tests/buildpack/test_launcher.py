"""The slug's start-traffic-duplicator launcher and .profile.d script, run as a dyno would.

Each test builds a slug with the real bin/compile, then runs the installed launcher with a
stripped environment. The test interpreters log how they were started (TD_TEST_PYTHON_LOG),
which shows which one the launcher picked and with what LD_LIBRARY_PATH and PYTHONPATH.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.buildpack.conftest import (
    FAKE_SHARED_PYTHON,
    HEROKU_PATH,
    App,
    Hooks,
    RuntimeServer,
    install_app_python,
)

LAUNCHER = Path(".traffic-duplicator") / "bin" / "start-traffic-duplicator"


def _slug(hooks: Hooks, server: RuntimeServer, stack: str) -> App:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", server.url("python.tar.gz"))
    result = hooks.compile(app, stack)
    assert result.returncode == 0, result.output
    return app


def _launch(
    app: App, *args: str, path: str = HEROKU_PATH, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """Runs the installed launcher from the app dir; returns it and the interpreter log."""
    log = app.home / "python.log"
    proc = subprocess.run(
        ["/bin/bash", str(app.build_dir / LAUNCHER), *args],
        cwd=app.build_dir,
        env={"PATH": path, "HOME": str(app.build_dir), "TD_TEST_PYTHON_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    lines = log.read_text().splitlines() if log.exists() else []
    return proc, [line.split("|") for line in lines]


def _last_exec(calls: list[list[str]]) -> tuple[str, str, list[str], list[str]]:
    """The interpreter, arguments, LD_LIBRARY_PATH and PYTHONPATH of the final exec."""
    executable, args, ld_path, py_path = calls[-1]
    return executable, args, ld_path.split(":"), py_path.split(":")


def test_runtime_is_used_with_its_lib_on_ld_library_path(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = _slug(hooks, runtime_server, "heroku-24")

    proc, calls = _launch(app, "--version")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("start-traffic-duplicator ")
    executable, args, ld_path, py_path = _last_exec(calls)
    runtime = app.build_dir / ".traffic-duplicator" / "python"
    assert Path(executable) == runtime / "bin" / "python3"
    assert args == "-m traffic_duplicator --version"
    assert ld_path[0] == str(runtime / "lib")
    assert py_path[0] == str(app.build_dir / ".traffic-duplicator" / "lib")


def test_the_apps_own_python_wins_when_it_appears_later(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    # heroku/python runs after this buildpack, so .heroku/python shows up after our compile.
    app = _slug(hooks, runtime_server, "heroku-24")
    app_python = install_app_python(app.build_dir)

    proc, calls = _launch(app, "--version")

    assert proc.returncode == 0, proc.stderr
    executable, _, ld_path, _ = _last_exec(calls)
    assert Path(executable) == app_python
    assert ld_path[0] == str(app.build_dir / ".heroku" / "python" / "lib")


def test_an_app_python_that_fails_the_version_check_is_skipped(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = _slug(hooks, runtime_server, "heroku-24")
    too_old = install_app_python(app.build_dir)
    # Stands in for an app on Python 3.9: it answers the launcher's version check with "no".
    too_old.write_text("#!/bin/sh\nexec /usr/bin/python3 -c 'import sys; sys.exit(1)'\n")

    proc, calls = _launch(app, "--version")

    assert proc.returncode == 0, proc.stderr
    executable, _, _, _ = _last_exec(calls)
    assert Path(executable) == app.build_dir / ".traffic-duplicator" / "python" / "bin" / "python3"


def test_heroku_22_slug_uses_the_first_usable_python3_on_path(
    hooks: Hooks, runtime_server: RuntimeServer, tmp_path: Path
) -> None:
    app = _slug(hooks, runtime_server, "heroku-22")
    # The stack's python3, instrumented: first on PATH, and not a shared-library build.
    stack_bin = tmp_path / "stack-bin"
    stack_bin.mkdir()
    stack_python = stack_bin / "python3"
    stack_python.write_text(
        FAKE_SHARED_PYTHON.replace('case ":${LD_LIBRARY_PATH:-}:" in', 'case "x" in').replace(
            '*":$prefix/lib:"*) ;;', "x) ;;"
        )
    )
    stack_python.chmod(0o755)

    # heroku/python's profile.d puts the app's interpreter first on PATH; here it is one that
    # fails the launcher's version check (an app on Python 3.9).
    too_old = install_app_python(app.build_dir)
    too_old.write_text("#!/bin/sh\nexec /usr/bin/python3 -c 'import sys; sys.exit(1)'\n")
    path = f"{too_old.parent}:{stack_bin}:{HEROKU_PATH}"

    proc, calls = _launch(app, "--version", path=path)

    assert proc.returncode == 0, proc.stderr
    executable, _, ld_path, _ = _last_exec(calls)
    assert Path(executable) == stack_python
    assert ld_path == [""]


def test_no_python_at_all_is_one_line_and_exit_2(
    hooks: Hooks, runtime_server: RuntimeServer, tmp_path: Path
) -> None:
    app = _slug(hooks, runtime_server, "heroku-22")
    empty = tmp_path / "empty-path"
    empty.mkdir()

    proc, _ = _launch(app, "bundle", "exec", "rails", "server", path=str(empty))

    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("start-traffic-duplicator: error: no Python 3.10+ found")


def test_a_broken_python_override_is_one_line_and_exit_2(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = _slug(hooks, runtime_server, "heroku-24")

    proc, calls = _launch(app, "--version", TRAFFIC_DUPLICATOR_PYTHON="/nonexistent/python3")

    assert proc.returncode == 2
    assert calls == []
    assert proc.stderr == (
        "start-traffic-duplicator: error: TRAFFIC_DUPLICATOR_PYTHON=/nonexistent/python3 is not "
        "a working Python 3.10+; fix or unset it (heroku config:unset TRAFFIC_DUPLICATOR_PYTHON)\n"
    )


def test_a_python_override_is_used(hooks: Hooks, runtime_server: RuntimeServer) -> None:
    app = _slug(hooks, runtime_server, "heroku-24")
    other = install_app_python(app.build_dir)
    moved = app.build_dir / "opt" / "python"
    moved.parent.mkdir()
    other.parent.parent.rename(moved)

    proc, calls = _launch(
        app, "--version", TRAFFIC_DUPLICATOR_PYTHON=str(moved / "bin" / "python3")
    )

    assert proc.returncode == 0, proc.stderr
    executable, _, ld_path, _ = _last_exec(calls)
    assert Path(executable) == moved / "bin" / "python3"
    assert ld_path[0] == str(moved / "lib")


def _profile(app: App, script: str, **env: str) -> str:
    proc = subprocess.run(
        ["bash", "-c", f'. "$HOME/.profile.d/traffic-duplicator.sh"; {script}'],
        env={"PATH": HEROKU_PATH, "HOME": str(app.build_dir), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return proc.stdout


@pytest.fixture
def slug(hooks: Hooks, runtime_server: RuntimeServer) -> App:
    return _slug(hooks, runtime_server, "heroku-22")


def test_profile_script_puts_the_launcher_on_path(slug: App) -> None:
    found = _profile(slug, "command -v start-traffic-duplicator; echo $TRAFFIC_DUPLICATOR_HOME")
    assert found.splitlines() == [
        str(slug.build_dir / LAUNCHER),
        str(slug.build_dir / ".traffic-duplicator"),
    ]


def test_profile_script_lets_config_vars_win(slug: App) -> None:
    home = _profile(slug, "echo $TRAFFIC_DUPLICATOR_HOME", TRAFFIC_DUPLICATOR_HOME="/elsewhere")
    assert home == "/elsewhere\n"


def test_profile_script_can_be_sourced_twice(slug: App) -> None:
    path = _profile(slug, '. "$HOME/.profile.d/traffic-duplicator.sh"; echo "$PATH"')
    assert path.count(".traffic-duplicator/bin") == 1


def test_a_symlink_to_the_launcher_finds_the_install(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = _slug(hooks, runtime_server, "heroku-24")
    link = app.build_dir / "bin" / "start-traffic-duplicator"
    link.parent.mkdir()
    link.symlink_to(Path("..") / LAUNCHER)

    proc = subprocess.run(
        ["/bin/bash", str(link), "--version"],
        env={"PATH": HEROKU_PATH, "HOME": str(app.build_dir)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("start-traffic-duplicator ")
