"""A CNB image, emulated: build the app with the real bin/detect and bin/build, then start its
`web` process as the CNB launcher would after heroku/procfile, and send traffic through $PORT.

How the start is emulated (tests/buildpack/cnb_lifecycle.py, `launch_env`):

    PATH=<every launch layer's bin/, later buildpacks first>:<tools>
    LD_LIBRARY_PATH=<every launch layer's lib/>  + each layer's env/ and env.launch/ files
    bash -c '<the Procfile's web line>'            (heroku/procfile's process), cwd the app

where <tools> holds symlinks to just bash, dirname and readlink: no python3 is on PATH
unless an earlier buildpack's layer puts it there. The earlier buildpacks of a Fir group
(heroku/ruby, heroku/nodejs, heroku/python) are stood in for by layers the test writes;
their commands serve HTTP with the real node, or /usr/bin/python3 by absolute path.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.buildpack.cnb_lifecycle import (
    MIRRORED,
    Lifecycle,
    cnb_buildpack,
    group_python,
    tools_dir,
)
from tests.buildpack.conftest import FIXTURES, RuntimeServer
from tests.support import (
    REPO_ROOT,
    RecordingServer,
    free_port_block,
)

__all__ = ["cnb_buildpack"]

SYSTEM_PYTHON = "/usr/bin/python3"

# Stands in for `rails server -p PORT` (no Ruby here): the dyno fixture's echo app.
FAKE_RAILS = f"""#!/usr/bin/env bash
[[ "${{1:-}}" == server ]] || {{ echo "fake rails: only 'rails server' is supported" >&2; exit 1; }}
exec {SYSTEM_PYTHON} {FIXTURES / "dyno" / "web.py"}
"""


def _ruby_group(lifecycle: Lifecycle) -> dict[str, str]:
    """heroku/ruby's gems layer: bundle, rails and em-proxy (the Gemfile.lock lists it)."""
    fake_bin = REPO_ROOT / "tests" / "fixtures" / "bin"
    lifecycle.earlier_layer(
        "heroku/ruby",
        "gems",
        {
            "bin/bundle": (fake_bin / "bundle").read_text(),
            "bin/em-proxy": (fake_bin / "em-proxy").read_text(),
            "bin/rails": FAKE_RAILS,
        },
    )
    # The em-proxy stand-in runs the built-in proxy with this interpreter.
    return {"FAKE_ENGINE_PYTHON": SYSTEM_PYTHON}


def _node_group(lifecycle: Lifecycle) -> dict[str, str]:
    """heroku/nodejs's dist layer, with the real node. The Procfile gets its one edit."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    lifecycle.earlier_layer("heroku/nodejs", "dist", {"bin/node": Path(node)})
    (lifecycle.app / "Procfile").write_text("web: start-traffic-duplicator node server.js\n")
    return {}


def _python_group(lifecycle: Lifecycle) -> dict[str, str]:
    """heroku/python's python and venv layers; gunicorn comes from the tests' virtualenv."""
    group_python(lifecycle)
    lifecycle.earlier_layer(
        "heroku/python",
        "venv",
        {"bin/gunicorn": f'#!/bin/sh\nexec {sys.executable} -m gunicorn "$@"\n'},
    )
    return {}


GROUPS = {"rails": _ruby_group, "node": _node_group, "python": _python_group}
ANSWERS = {
    "rails": [
        (200, b"app saw GET /hello?from=cnb (0 bytes)\n"),
        (200, b"app saw POST /orders (10 bytes)\n"),
    ],
    "node": [(200, b"ok"), (200, b"ok")],
    "python": [(200, b"ok"), (200, b"ok")],
}


@pytest.mark.parametrize("fixture", ["rails", "node", "python"])
def test_built_image_serves_on_port_and_mirrors_from_the_layers_alone(
    cnb_buildpack: Path, tmp_path: Path, runtime_server: RuntimeServer, fixture: str
) -> None:
    lifecycle = Lifecycle(tmp_path / "cnb", cnb_buildpack)
    lifecycle.copy_app(fixture)
    run_env = GROUPS[fixture](lifecycle)
    lifecycle.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url("python.tar.gz"))

    with RecordingServer() as destination:
        (lifecycle.app / "config" / "gor.options").write_text(
            f"--output-http http://127.0.0.1:{destination.port}\n"
        )
        detected = lifecycle.detect()
        assert detected.returncode == 0, detected.output
        built = lifecycle.build()
        assert built.returncode == 0, built.output

        port = free_port_block(3)
        python_log = tmp_path / "python.log"
        env = lifecycle.launch_env(
            str(tools_dir(tmp_path, "bash", "dirname", "readlink")),
            PORT=str(port),
            TD_TEST_PYTHON_LOG=str(python_log),
            **run_env,
        )
        on_path = shutil.which("python3", path=env["PATH"])
        if fixture == "python":
            assert on_path is not None and "/heroku_python/" in on_path
        else:
            assert on_path is None, f"python3 on the launch PATH: {on_path}"

        log = tmp_path / "web.log"
        answers, mirrored = lifecycle.serve_and_mirror(env, port, destination, log)

        assert answers == ANSWERS[fixture], log.read_text()
        assert mirrored == MIRRORED

    # The wrapper ran on the layer's runtime, or on the group's Python for a Python app.
    text = log.read_text()
    started = ["|".join(call.split("|")[:2]) for call in python_log.read_text().splitlines()]
    if fixture == "python":
        python = lifecycle.layers_root / "heroku_python" / "python" / "bin" / "python3"
        assert not (lifecycle.layer / "python").exists()
    else:
        python = lifecycle.layer / "python" / "bin" / "python3"
    assert any(call.startswith(f"{python}|-m traffic_duplicator ") for call in started), started
    assert "at=engine process=replayer engine=builtin" in text, text
    # A Rails app whose Gemfile.lock lists em-proxy keeps it, with Ruby from the group.
    proxy = '"bundle exec em-proxy"' if fixture == "rails" else "builtin"
    assert f"at=engine process=proxy engine={proxy}" in text, text
