"""Warnings bin/compile gives about the Procfile and about em-proxy needing Ruby."""

from __future__ import annotations

import json

import pytest

from tests.buildpack.conftest import App, Hooks

# heroku-22 uses the stack's python3, so these builds need no runtime server.
STACK = "heroku-22"


def test_procfile_starting_with_the_wrapper_passes_quietly(hooks: Hooks) -> None:
    app = hooks.app("node")
    (app.build_dir / "Procfile").write_text("web: start-traffic-duplicator node server.js\r\n")

    result = hooks.compile(app, STACK)

    assert result.returncode == 0, result.output
    assert "       web: start-traffic-duplicator node server.js\n" in result.stdout
    assert "Procfile" not in result.stderr


@pytest.mark.parametrize(
    "web",
    [
        "exec start-traffic-duplicator node server.js",
        ".traffic-duplicator/bin/start-traffic-duplicator node server.js",
    ],
)
def test_procfile_may_exec_or_use_a_path_to_the_wrapper(hooks: Hooks, web: str) -> None:
    app = hooks.app("node")
    (app.build_dir / "Procfile").write_text(f"web: {web}\n")

    result = hooks.compile(app, STACK)

    assert result.returncode == 0, result.output
    assert "Warning" not in result.stderr


def test_missing_procfile_is_a_warning_with_an_example(hooks: Hooks) -> None:
    app = hooks.app("node")
    (app.build_dir / "Procfile").unlink()

    result = hooks.compile(app, STACK)

    assert result.returncode == 0, result.output
    assert " !     Warning: no Procfile, so nothing starts start-traffic-duplicator" in (
        result.stderr
    )
    assert " !       web: start-traffic-duplicator bundle exec rails server -p $PORT\n" in (
        result.stderr
    )


def test_procfile_without_web_is_a_warning(hooks: Hooks) -> None:
    app = hooks.app("node")
    (app.build_dir / "Procfile").write_text("worker: node worker.js\n")

    result = hooks.compile(app, STACK)

    assert result.returncode == 0, result.output
    assert " !     Warning: the Procfile has no web process" in result.stderr


def _rails(hooks: Hooks) -> App:
    return hooks.app("rails")


def test_em_proxy_without_a_visible_buildpack_list_warns_that_ruby_is_needed(
    hooks: Hooks,
) -> None:
    app = _rails(hooks)

    result = hooks.compile(app, STACK)

    assert result.returncode == 0, result.output
    assert "-----> Checking for Ruby (em-proxy is in Gemfile.lock)\n" in result.stdout
    assert " !     Warning: em-proxy is in Gemfile.lock; it needs Ruby on the dyno." in (
        result.stderr
    )
    assert " !          heroku buildpacks:add heroku/ruby\n" in result.stderr


def test_em_proxy_with_ruby_after_us_in_dot_buildpacks_is_fine(hooks: Hooks) -> None:
    app = _rails(hooks)
    (app.build_dir / ".buildpacks").write_text(
        "https://github.com/example/traffic-duplicator-buildpack\nheroku/ruby\n"
    )

    result = hooks.compile(app, STACK)

    assert result.returncode == 0, result.output
    assert "       .buildpacks lists the Ruby buildpack" in result.stdout
    assert "em-proxy" not in result.stderr


def test_em_proxy_with_dot_buildpacks_lacking_ruby_warns(hooks: Hooks) -> None:
    app = _rails(hooks)
    (app.build_dir / ".buildpacks").write_text(
        "# ours first\nhttps://github.com/example/traffic-duplicator-buildpack\nheroku/nodejs\n"
    )

    result = hooks.compile(app, STACK)

    assert result.returncode == 0, result.output
    assert (
        " !     Warning: em-proxy is in Gemfile.lock, but .buildpacks lists no Ruby buildpack."
        in result.stderr
    )


def test_em_proxy_with_ruby_in_app_json_is_fine(hooks: Hooks) -> None:
    app = _rails(hooks)
    (app.build_dir / "app.json").write_text(
        json.dumps(
            {
                "name": "rails-fixture",
                "buildpacks": [
                    {"url": "https://github.com/example/traffic-duplicator-buildpack"},
                    {"url": "https://github.com/heroku/heroku-buildpack-ruby"},
                ],
            }
        )
    )

    result = hooks.compile(app, STACK)

    assert result.returncode == 0, result.output
    assert "       app.json lists the Ruby buildpack" in result.stdout


def test_em_proxy_with_ruby_in_buildpack_url_is_fine(hooks: Hooks) -> None:
    app = _rails(hooks)
    app.set_config("BUILDPACK_URL", "https://github.com/heroku/heroku-buildpack-ruby.git")

    result = hooks.compile(app, STACK)

    assert result.returncode == 0, result.output
    assert "       BUILDPACK_URL lists the Ruby buildpack" in result.stdout


def test_no_em_proxy_no_ruby_check(hooks: Hooks) -> None:
    app = _rails(hooks)
    lock = app.build_dir / "Gemfile.lock"
    kept = [line for line in lock.read_text().splitlines() if "em-proxy" not in line]
    lock.write_text("\n".join(kept) + "\n")

    result = hooks.compile(app, STACK)

    assert result.returncode == 0, result.output
    assert "Checking for Ruby" not in result.stdout
    assert result.stderr == ""


REFUSE = " !     Error: the dyno would refuse to start: "


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        (
            "TRAFFIC_DUPLICATOR_EPOLL",
            "maybe",
            "TRAFFIC_DUPLICATOR_EPOLL='maybe' is not understood; use 0, false, no or off to "
            "relay on asyncio protocols (1, true, yes, on or unset keep the epoll core)",
        ),
        *(
            (
                "TRAFFIC_DUPLICATOR_PROXY_PROCESSES",
                value,
                f"TRAFFIC_DUPLICATOR_PROXY_PROCESSES='{value}' is not a number of processes; "
                "use a whole number from 1 to 16 (unset: 1)",
            )
            for value in ("0", "abc", "1000")
        ),
        (
            "TRAFFIC_DUPLICATOR_UVLOOP",
            "maybe",
            "TRAFFIC_DUPLICATOR_UVLOOP='maybe' is not understood; use false, 0, no or off to run "
            "the engines on asyncio (true, 1, yes, on or unset use uvloop where it is installed)",
        ),
    ],
)
def test_a_bad_engine_var_fails_the_push_with_the_wrappers_line(
    hooks: Hooks, name: str, value: str, line: str
) -> None:
    # `heroku config:set` with a typo would otherwise build fine and crash-loop the dyno.
    app = hooks.app("node")
    app.set_config(name, value)

    result = hooks.compile(app, STACK)

    assert result.returncode == 1, result.output
    assert f"\n{REFUSE}{line}\n" in result.stderr
    assert "Traceback" not in result.output


def test_the_built_in_proxy_vars_are_not_checked_when_em_proxy_runs(hooks: Hooks) -> None:
    app = _rails(hooks)
    app.set_config("TRAFFIC_DUPLICATOR_EPOLL", "maybe")
    app.set_config("TRAFFIC_DUPLICATOR_PROXY_PROCESSES", "abc")

    result = hooks.compile(app, STACK)

    assert result.returncode == 0, result.output
    assert 'engine="bundle exec em-proxy"' in result.stdout
