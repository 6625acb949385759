"""A dyno, emulated: build a slug with the real bin/compile, start it the way Heroku does,
send traffic through $PORT, and see it answered by the app and mirrored to a destination.

How the start is emulated (Heroku runs the Procfile command with `bash --login -c`, from the
app directory, after sourcing .profile.d/*.sh):

    env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=$BUILD_DIR PORT=$PORT \\
        bash --login -c 'for f in "$HOME"/.profile.d/*.sh; do . "$f"; done; <web command>'

with cwd BUILD_DIR. The environment is otherwise empty: no virtualenv, no PYTHONPATH, and
the interpreter is the system python3 (heroku-22) or the runtime the build installed, which
execs the system python3 (heroku-24).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.buildpack.conftest import HEROKU_PATH, App, Hooks, RuntimeServer, web_round_trip
from tests.support import RecordingServer, free_port_block


def _web_command(build_dir: Path) -> str:
    for line in (build_dir / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise AssertionError("the fixture Procfile has no web process")


def _dyno_argv(app: App, port: int) -> list[str]:
    profile_d = 'for f in "$HOME"/.profile.d/*.sh; do . "$f"; done; '
    return [
        "env",
        "-i",
        f"PATH={HEROKU_PATH}",
        f"HOME={app.build_dir}",
        f"PORT={port}",
        f"TD_TEST_PYTHON_LOG={app.home / 'python.log'}",
        "bash",
        "--login",
        "-c",
        profile_d + _web_command(app.build_dir),
    ]


@pytest.mark.parametrize("stack", ["heroku-22", "heroku-24"])
def test_dyno_answers_through_port_and_mirrors_to_the_destination(
    hooks: Hooks, runtime_server: RuntimeServer, stack: str
) -> None:
    with RecordingServer() as destination:
        app = hooks.app("dyno")
        app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url("python.tar.gz"))
        (app.build_dir / "config" / "gor.options").write_text(
            f"--output-http http://127.0.0.1:{destination.port}\n"
        )
        built = hooks.compile(app, stack)
        assert built.returncode == 0, built.output

        port = free_port_block(3)
        log = app.home / "dyno.log"
        answers = web_round_trip(
            _dyno_argv(app, port),
            env=None,
            cwd=app.build_dir,
            port=port,
            log=log,
            requests=[("GET", "/hello?from=test", b""), ("POST", "/orders", b'{"qty": 3}')],
            mirrored=lambda: destination.count() >= 2,
        )

        # Answered by the app itself.
        assert answers == [
            (200, b"app saw GET /hello?from=test (0 bytes)\n"),
            (200, b"app saw POST /orders (10 bytes)\n"),
        ]
        # Mirrored, byte for byte where it matters.
        mirrored = sorted(destination.snapshot(), key=lambda r: r.target)
        assert [(r.method, r.target, r.body) for r in mirrored] == [
            (b"GET", b"/hello?from=test", b""),
            (b"POST", b"/orders", b'{"qty": 3}'),
        ]

    # The interpreter the launcher chose: the installed runtime on heroku-24 (which logs its
    # starts), the stack's python3 on heroku-22 (no runtime in the slug).
    runtime = app.build_dir / ".traffic-duplicator" / "python" / "bin" / "python3"
    if stack == "heroku-24":
        calls = (app.home / "python.log").read_text().splitlines()
        assert f"{runtime}|-m traffic_duplicator python3 web.py" in [
            "|".join(call.split("|")[:2]) for call in calls
        ]
    else:
        assert not runtime.exists()
    # The wrapper logged its plan in logfmt, with the built-in engines.
    text = log.read_text()
    assert re.search(r"at=engine process=replayer engine=builtin", text), text
    assert re.search(r"at=engine process=proxy engine=builtin", text), text
