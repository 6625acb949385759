"""The engines' own config vars (TRAFFIC_DUPLICATOR_EPOLL, _PROXY_PROCESSES, _UVLOOP) are
checked by the wrapper before anything starts, with real runs: a typo is one line and exit 2,
not a proxy that exits at every start until the dyno is given up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import wait_until
from tests.wrapper.harness import (
    FIXTURE_BIN,
    example_app,
    run_wrapper,
    running_wrapper,
    write_options,
)
from tests.wrapper.test_cli_errors import assert_one_line

OUTPUT = "--output-http http://127.0.0.1:9"
EPOLL = "TRAFFIC_DUPLICATOR_EPOLL"
PROCESSES = "TRAFFIC_DUPLICATOR_PROXY_PROCESSES"
UVLOOP = "TRAFFIC_DUPLICATOR_UVLOOP"
PROCESSES_FIX = "use a whole number from 1 to 16 (unset: 1)"


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    write_options(tmp_path, OUTPUT)
    return tmp_path


@pytest.mark.parametrize(
    ("variable", "value", "fix"),
    [
        (EPOLL, "maybe", "use 0, false, no or off to relay on asyncio protocols"),
        (PROCESSES, "0", PROCESSES_FIX),
        (PROCESSES, "abc", PROCESSES_FIX),
        (PROCESSES, "1000", PROCESSES_FIX),
        (PROCESSES, "٣", PROCESSES_FIX),  # a digit, but not an ASCII one
        (UVLOOP, "maybe", "use false, 0, no or off to run the engines on asyncio"),
    ],
)
def test_a_bad_engine_var_stops_the_boot_with_one_line(
    app_dir: Path, variable: str, value: str, fix: str
) -> None:
    result = run_wrapper(app_dir, example_app(), extra={variable: value})
    assert_one_line(result, 2, f"{variable}={value!r} is not", fix)
    assert not (app_dir / "wrapper.err").exists()


def test_uvloop_off_in_words_runs_the_engines_on_asyncio(app_dir: Path) -> None:
    extra = {UVLOOP: "Off", EPOLL: "no", PROCESSES: " 2 "}
    with running_wrapper(app_dir, example_app(), extra=extra) as wrapper:
        wrapper.wait_serving()
        # Both proxy processes say how they listen (the second is worker 1).
        wait_until(lambda: wrapper.stderr().count("proxy | at=listening ") == 2, 15)
        text = wrapper.stderr()
    assert "proxy | at=worker_start worker=1 " in text, text
    assert text.count(" loop=asyncio core=protocols ") == 2, text


def test_with_em_proxy_the_built_in_proxy_vars_are_not_read(app_dir: Path) -> None:
    # em-proxy never reads them: a leftover value must not stop a dyno that does not use it.
    (app_dir / "Gemfile.lock").write_text("GEM\n  specs:\n    em-proxy (0.1.9)\n")
    # The fixture em-proxy runs the built-in proxy, which does read them; like the real one,
    # this em-proxy does not see them.
    ours = app_dir / "em-proxy-bin"
    ours.mkdir()
    (ours / "em-proxy").write_text(
        f'#!/bin/sh\nexec env -u {EPOLL} -u {PROCESSES} {FIXTURE_BIN / "em-proxy"} "$@"\n'
    )
    (ours / "em-proxy").chmod(0o755)
    path = os.pathsep.join([str(ours), str(FIXTURE_BIN), os.environ["PATH"]])
    extra = {EPOLL: "maybe", PROCESSES: "abc", "PATH": path}
    with running_wrapper(app_dir, example_app(), extra=extra) as wrapper:
        wrapper.wait_serving()
        proxy = wrapper.events(at="engine", process="proxy")
    assert proxy[0]["engine"] == "bundle exec em-proxy"
