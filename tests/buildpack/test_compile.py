"""bin/compile, run for real on fixture apps in temporary folders, per stack."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.buildpack.conftest import (
    FIXTURES,
    Hooks,
    RuntimeServer,
    install_app_python,
    tree_digest,
)

RUNTIME = "python.tar.gz"


def _runtime_url(app_hooks: Hooks, server: RuntimeServer, path: str = RUNTIME) -> str:
    return server.url(path)


def _assert_installed(build_dir: Path) -> None:
    launcher = build_dir / ".traffic-duplicator" / "bin" / "start-traffic-duplicator"
    assert launcher.is_file()
    assert launcher.stat().st_mode & 0o111
    package = build_dir / ".traffic-duplicator" / "lib" / "traffic_duplicator"
    assert (package / "__init__.py").is_file()
    assert (package / "options" / "__init__.py").is_file()
    profile = (build_dir / ".profile.d" / "traffic-duplicator.sh").read_text()
    assert 'TRAFFIC_DUPLICATOR_HOME="${TRAFFIC_DUPLICATOR_HOME:-${HOME}/.traffic-duplicator}"' in (
        profile
    )
    assert '"${HOME}/.traffic-duplicator/bin:${PATH}"' in profile


@pytest.mark.parametrize("stack", ["heroku-24", "heroku-26"])
def test_rails_app_on_a_stack_without_python_gets_the_runtime(
    hooks: Hooks, runtime_server: RuntimeServer, stack: str
) -> None:
    app = hooks.app("rails")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))
    before = runtime_server.count(RUNTIME)

    result = hooks.compile(app, stack)

    assert result.returncode == 0, result.output
    assert runtime_server.count(RUNTIME) == before + 1
    _assert_installed(app.build_dir)
    runtime = app.build_dir / ".traffic-duplicator" / "python"
    assert (runtime / "bin" / "python3").is_file()
    assert (runtime / "lib" / "libpython3.13.so.1.0").is_file()
    out = result.stdout
    assert f"-----> Choosing the Python for traffic-duplicator (stack: {stack})\n" in out
    assert f"       Downloading {runtime_server.url(RUNTIME)}\n" in out
    assert "       Installed Python 3." in out
    # The options summary from the real validator, indented under its step.
    assert "-----> Validating config/gor.options\n" in out
    assert "       output-http https://staging.example.com (limit 10/s)\n" in out
    # Every line is a step or an indented detail.
    for line in out.splitlines():
        assert line.startswith(("-----> ", "       ")), line
    # The app's own files are untouched and nothing lands in .heroku (heroku/python's place).
    assert (app.build_dir / "Procfile").read_text() == (FIXTURES / "rails" / "Procfile").read_text()
    assert not (app.build_dir / ".heroku").exists()


def test_second_build_uses_the_cached_archive_without_downloading(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("rails")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))
    first = hooks.compile(app, "heroku-24")
    assert first.returncode == 0, first.output
    requests_after_first = runtime_server.count(RUNTIME)

    # A fresh checkout of the same app, with the cache the first build left.
    rebuilt = hooks.app("rails", name="rebuilt")
    second = hooks.compile(
        type(app)(rebuilt.build_dir, app.cache_dir, app.env_dir, rebuilt.home), "heroku-24"
    )

    assert second.returncode == 0, second.output
    assert runtime_server.count(RUNTIME) == requests_after_first
    assert "Using the cached runtime archive (python.tar.gz)" in second.stdout
    assert "Downloading" not in second.stdout
    assert tree_digest(rebuilt.build_dir) == tree_digest(app.build_dir)


def test_rebuilding_in_the_same_directory_gives_the_same_slug(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("rails")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))
    assert hooks.compile(app, "heroku-24").returncode == 0
    slug = tree_digest(app.build_dir)
    cache = tree_digest(app.cache_dir)

    again = hooks.compile(app, "heroku-24")

    assert again.returncode == 0, again.output
    assert tree_digest(app.build_dir) == slug
    assert tree_digest(app.cache_dir) == cache


def test_heroku_22_uses_the_stack_python_and_downloads_nothing(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("rails")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))
    before = len(runtime_server.requests)

    result = hooks.compile(app, "heroku-22")

    assert result.returncode == 0, result.output
    assert len(runtime_server.requests) == before
    assert "       Using the stack's python3 3." in result.stdout
    assert not (app.build_dir / ".traffic-duplicator" / "python").exists()
    _assert_installed(app.build_dir)


def test_switching_to_heroku_22_drops_a_runtime_left_by_an_earlier_build(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))
    assert hooks.compile(app, "heroku-24").returncode == 0
    assert (app.build_dir / ".traffic-duplicator" / "python").is_dir()

    result = hooks.compile(app, "heroku-22")

    assert result.returncode == 0, result.output
    assert not (app.build_dir / ".traffic-duplicator" / "python").exists()


@pytest.mark.parametrize("stack", ["heroku-22", "heroku-24", "heroku-26"])
def test_python_app_reuses_its_own_interpreter(
    hooks: Hooks, runtime_server: RuntimeServer, stack: str
) -> None:
    app = hooks.app("python")
    install_app_python(app.build_dir)
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))
    before = len(runtime_server.requests)

    result = hooks.compile(app, stack)

    assert result.returncode == 0, result.output
    assert len(runtime_server.requests) == before
    assert "       Using the app's Python 3." in result.stdout
    assert "(.heroku/python); no download needed" in result.stdout
    assert not (app.build_dir / ".traffic-duplicator" / "python").exists()
    assert "       output-http https://qa.example.com (limit 25%)\n" in result.stdout


def test_node_app_builds_and_is_told_the_exact_procfile_line(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))

    result = hooks.compile(app, "heroku-26")

    assert result.returncode == 0, result.output
    _assert_installed(app.build_dir)
    assert " !     Found:  web: node server.js\n" in result.stderr
    assert " !       web: start-traffic-duplicator node server.js\n" in result.stderr
    # No em-proxy in a Node app: no Ruby check, and no warning about it.
    assert "Checking for Ruby" not in result.stdout
    assert "em-proxy" not in result.stderr


def test_app_without_gor_options_fails_with_the_fix(hooks: Hooks) -> None:
    app = hooks.app("no-options")

    result = hooks.compile(app, "heroku-24")

    assert result.returncode == 1
    assert " !     Error: config/gor.options not found" in result.stderr
    assert " !     Found: no config/ directory\n" in result.stderr
    assert " !     1. Create config/gor.options" in result.stderr
    assert not (app.build_dir / ".traffic-duplicator").exists()


def test_broken_options_file_fails_the_build_with_file_line_and_fix(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("broken-options")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))

    result = hooks.compile(app, "heroku-24")

    assert result.returncode == 1
    assert " !     Error: config/gor.options is not valid" in result.stderr
    # The validator's own line: file, line number, the bad flag and a suggestion.
    match = re.search(
        r" !     Found: (config/gor\.options line 3: .*--output-htp.*)\n", result.stderr
    )
    assert match, result.stderr
    assert "--output-http" in match.group(1)
    assert " !     1. Edit the line named above in config/gor.options." in result.stderr
    assert " !     2. Commit the change and push again." in result.stderr


def test_gor_only_flags_are_refused_without_a_gor_binary(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))
    options = app.build_dir / "config" / "gor.options"
    options.write_text(options.read_text() + "--output-http-track-response\n")

    result = hooks.compile(app, "heroku-24")

    assert result.returncode == 1
    assert "config/gor.options line 2: --output-http-track-response" in result.stderr
    assert "vendor/gor" in result.stderr


def test_compile_writes_nothing_outside_build_and_cache_dirs(
    hooks: Hooks, buildpack: Path, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("rails")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))
    env_before = tree_digest(app.env_dir)
    buildpack_before = tree_digest(buildpack)

    # TMPDIR points nowhere (see Hooks.env), so a stray mktemp would fail the build.
    result = hooks.compile(app, "heroku-24")

    assert result.returncode == 0, result.output
    assert tree_digest(buildpack) == buildpack_before
    assert tree_digest(app.env_dir) == env_before
    assert list(app.home.iterdir()) == []
    assert not (app.cache_dir / "traffic-duplicator" / "tmp").exists()


def test_an_unexpected_failure_is_explained_with_the_command_and_where(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))
    # A file where the buildpack keeps its cache directory: mkdir fails.
    (app.cache_dir / "traffic-duplicator").write_text("not a directory\n")

    result = hooks.compile(app, "heroku-24")

    assert result.returncode == 1
    assert " !     Error: the traffic-duplicator buildpack failed unexpectedly." in result.stderr
    assert " !       mkdir -p " in result.stderr
    assert re.search(
        r" !     at lib/python\.sh:\d+ \(in python::install_runtime\)\.", result.stderr
    )
