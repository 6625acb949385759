"""The wrapper's process lifecycle with real processes: start order, exits, restarts, signals."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from tests.support import wait_for_port, wait_until
from tests.wrapper.harness import (
    EXAMPLE_APP,
    SHUTDOWN_TIMEOUT,
    assert_nothing_left,
    descendants,
    established,
    example_app,
    get,
    port_block,
    running_wrapper,
    write_options,
)
from traffic_duplicator.wrapper.probes import accepts

OUTPUT = "--output-http http://127.0.0.1:9"
STUBBORN_APP = """
import signal, sys
from http.server import HTTPServer, SimpleHTTPRequestHandler
signal.signal(signal.SIGTERM, signal.SIG_IGN)
HTTPServer(("127.0.0.1", int(sys.argv[1])), SimpleHTTPRequestHandler).serve_forever()
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    write_options(tmp_path, OUTPUT)
    return tmp_path


def test_start_order_binds_port_only_once_the_app_serves(app_dir: Path) -> None:
    # The app boots only when the test opens the gate; $PORT must stay closed until it answers.
    gate = app_dir / "gate"
    script = f"while [ ! -e {gate} ]; do sleep 0.05; done; exec {sys.executable} {EXAMPLE_APP} $0"
    with running_wrapper(app_dir, ["sh", "-c", script, "$PORT"]) as wrapper:
        wrapper.wait_event(at="start", process="app")
        assert wrapper.events(at="start")[0]["process"] == "replayer"
        wrapper.wait_event(at="ready", process="replayer")  # the wrapper has looked around
        assert not accepts(wrapper.port)
        assert not wrapper.events(at="start", process="proxy")
        gate.touch()
        wrapper.wait_serving()
        ready = wrapper.events(at="ready", process="app")[0]
        assert ready["port"] == str(wrapper.app_port)
        starts = [e["process"] for e in wrapper.events(at="start")]
        assert starts == ["replayer", "app", "proxy"]
        assert wrapper.events(at="rewrite")[0]["new"] == str(wrapper.app_port)


def test_app_output_passes_untouched_and_engine_lines_are_prefixed(app_dir: Path) -> None:
    with running_wrapper(app_dir, example_app(), EXAMPLE_APP_QUIET="0") as wrapper:
        wrapper.wait_serving()
        assert get(wrapper.port, "/hello") == 200
        os.kill(wrapper.proc.pid, signal.SIGTERM)
        wrapper.wait_exit(SHUTDOWN_TIMEOUT + 3)
    # The app's stdout is the wrapper's stdout, unprefixed; so is its request log on stderr.
    assert wrapper.stdout().splitlines() == [
        f"example app listening on 0.0.0.0:{wrapper.app_port}",
        "example app stopped",
    ]
    err = wrapper.stderr().splitlines()
    assert any(
        line.startswith("127.0.0.1 - - [") and '"GET /hello HTTP/1.1" 200' in line for line in err
    )
    assert any(line.startswith("proxy | at=") for line in err)
    assert any(line.startswith("replayer | at=") for line in err)
    ours = [line for line in err if line.startswith("traffic_duplicator ")]
    assert ours[0].startswith("traffic_duplicator at=config port=")
    assert all(
        line.startswith(("traffic_duplicator at=", "proxy | ", "replayer | ", "127.0.0.1 - - "))
        for line in err
    ), err


def test_app_exit_status_is_the_wrappers_without_waiting_for_the_timeout(app_dir: Path) -> None:
    # A timeout far longer than the wait: the wrapper must exit because its children did.
    with running_wrapper(
        app_dir, example_app(), TRAFFIC_DUPLICATOR_SHUTDOWN_TIMEOUT="600"
    ) as wrapper:
        wrapper.wait_serving()
        assert get(wrapper.app_port, "/exit/3") == 200
        wrapper.wait_event(at="exit", process="app")
        assert wrapper.wait_exit(SHUTDOWN_TIMEOUT + 10) == 3
        assert wrapper.events(at="exit", process="app")[0]["status"] == "3"
        assert not wrapper.events(at="kill")
        assert_nothing_left(wrapper)


def test_app_failing_while_booting_stops_the_replayer(app_dir: Path) -> None:
    crash = [sys.executable, "-c", "import sys; sys.exit(4)"]
    with running_wrapper(app_dir, crash) as wrapper:
        assert wrapper.wait_exit(5) == 4
        assert wrapper.events(at="stop", process="replayer")
        assert not wrapper.events(at="start", process="proxy")
        assert_nothing_left(wrapper)


def test_app_killed_by_a_signal_exits_128_plus_n(app_dir: Path) -> None:
    with running_wrapper(app_dir, example_app()) as wrapper:
        wrapper.wait_serving()
        os.kill(wrapper.pid_of("app"), signal.SIGKILL)
        assert wrapper.wait_exit(5) == 137
        assert wrapper.events(at="exit", process="app")[0]["signal"] == "SIGKILL"
        assert_nothing_left(wrapper)


def test_app_leaving_children_behind_has_them_stopped(app_dir: Path) -> None:
    # The app's shell exits 3 but leaves a sleeper in its process group.
    script = f"{sys.executable} {EXAMPLE_APP} $0 & app=$!; sleep 60 & wait $app; exit 3"
    command = ["sh", "-c", script, "$PORT"]
    with running_wrapper(app_dir, command) as wrapper:
        wrapper.wait_serving()
        assert get(wrapper.app_port, "/exit/0") == 200
        assert wrapper.wait_exit(SHUTDOWN_TIMEOUT + 3) == 3
        assert_nothing_left(wrapper)


def in_flight(
    port: int, count: int, seconds: float
) -> tuple[list[threading.Thread], list[int | None]]:
    results: list[int | None] = []

    def one() -> None:
        results.append(get(port, f"/sleep/{seconds}", timeout=10))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


@pytest.mark.parametrize("target", ["wrapper", "wrapper-group", "every-process"])
def test_sigterm_is_one_graceful_shutdown(app_dir: Path, target: str) -> None:
    with running_wrapper(app_dir, example_app()) as wrapper:
        wrapper.wait_serving()
        threads, results = in_flight(wrapper.port, 4, 1.5)
        wait_until(lambda: established(wrapper.app_port) == 4, 15, message="not in the app")
        pids = [wrapper.proc.pid, *descendants(wrapper.proc.pid)]
        if target == "wrapper":
            os.kill(wrapper.proc.pid, signal.SIGTERM)
        elif target == "wrapper-group":
            os.killpg(wrapper.proc.pid, signal.SIGTERM)
        else:
            # What Heroku does: every process of the dyno at once.
            for pid in pids:
                os.kill(pid, signal.SIGTERM)
        status = wrapper.wait_exit(SHUTDOWN_TIMEOUT + 3)
        for thread in threads:
            thread.join(10)
        assert results == [200] * 4, wrapper.stderr()
        assert status == 0, wrapper.stderr()
        # Inside the timeout: nothing was SIGKILLed at the deadline, nobody was hurried.
        assert not wrapper.events(at="kill"), wrapper.stderr()
        assert not wrapper.events(at="hurry"), wrapper.stderr()
        stops = [e["process"] for e in wrapper.events(at="stop")]
        assert len(stops) == len(set(stops)), "a process was asked to stop twice"
        proxy_stop = wrapper.events(at="stop", process="proxy")[0]
        if target == "every-process":
            # The platform's SIGTERM is not repeated: our engines take a second one as "hurry".
            assert proxy_stop["signal"] == "none", wrapper.stderr()
        else:
            assert proxy_stop["signal"] == "SIGTERM"
        assert not [e for e in wrapper.events(at="exit") if "restart_in" in e]
        assert_nothing_left(wrapper)


def test_sigint_from_a_terminal_stops_everything(app_dir: Path) -> None:
    with running_wrapper(app_dir, example_app()) as wrapper:
        wrapper.wait_serving()
        os.kill(wrapper.proc.pid, signal.SIGINT)
        assert wrapper.wait_exit(SHUTDOWN_TIMEOUT + 3) == 0
        assert wrapper.events(at="signal")[0]["signal"] == "SIGINT"
        assert_nothing_left(wrapper)


def test_a_child_that_ignores_sigterm_is_killed_at_the_timeout(app_dir: Path) -> None:
    stubborn = [sys.executable, "-c", STUBBORN_APP, "$PORT"]
    with running_wrapper(app_dir, stubborn, TRAFFIC_DUPLICATOR_SHUTDOWN_TIMEOUT="2") as wrapper:
        wrapper.wait_serving()
        os.kill(wrapper.proc.pid, signal.SIGTERM)
        status = wrapper.wait_exit(10)
        # Killed by the deadline the wrapper set (the exact times: the transcript tests).
        (killed,) = wrapper.events(at="kill", process="app")
        assert killed["after"] == "2s", wrapper.stderr()
        assert status == 137
        order = [(e["at"], e.get("process") or e.get("phase")) for e in wrapper.events()]
        stop, kill, done = ("stop", "app"), ("kill", "app"), ("phase", "done")
        assert order.index(stop) < order.index(kill) < order.index(done)
        assert_nothing_left(wrapper)


def test_replayer_crash_is_restarted_with_backoff(app_dir: Path) -> None:
    with running_wrapper(app_dir, example_app()) as wrapper:
        wrapper.wait_serving()
        first = wrapper.pid_of("replayer")
        os.kill(first, signal.SIGKILL)
        exit_event = wrapper.wait_event(at="exit", process="replayer")
        assert exit_event["signal"] == "SIGKILL"
        assert exit_event["restart_in"] == "0.2s"
        wrapper.wait_event(at="start", process="replayer", restart="1")
        os.kill(wrapper.pid_of("replayer"), signal.SIGKILL)
        second = wrapper.wait_event(at="exit", process="replayer", count=2)
        assert second["restart_in"] == "0.4s"
        wrapper.wait_event(at="start", process="replayer", restart="2")
        assert get(wrapper.port, "/") == 200
        assert wrapper.proc.poll() is None


def test_proxy_crash_is_restarted_at_once_then_given_up_after_five(app_dir: Path) -> None:
    with running_wrapper(app_dir, example_app()) as wrapper:
        wrapper.wait_serving()
        for crash in range(1, 5):
            os.kill(wrapper.pid_of("proxy"), signal.SIGKILL)
            event = wrapper.wait_event(at="exit", process="proxy", count=crash)
            assert event["restart_in"] == "0s"
            wrapper.wait_event(at="start", process="proxy", restart=str(crash))
            wait_until(lambda: get(wrapper.port, "/", timeout=1) == 200, 10)
        os.kill(wrapper.pid_of("proxy"), signal.SIGKILL)
        assert wrapper.wait_exit(SHUTDOWN_TIMEOUT + 3) == 1
        assert wrapper.events(at="exit", process="proxy")[-1]["action"] == "give-up"
        assert wrapper.events(at="error", process="proxy")[0]["crashes"] == "5"
        assert_nothing_left(wrapper)


def test_app_that_ignores_the_port_it_was_given_is_named_and_serves_alone(app_dir: Path) -> None:
    port = port_block()
    # The port is inside a shell script, which the wrapper rightly does not rewrite.
    command = ["sh", "-c", f"exec {sys.executable} {EXAMPLE_APP} {port}"]
    with running_wrapper(app_dir, command, port=port) as wrapper:
        error = wrapper.wait_event(at="error", problem="app-ignored-port")
        assert error["port"] == str(port)
        assert "PORT=" in error["fix"]
        wrapper.wait_event(at="exit", process="replayer")
        assert get(port, "/") == 200
        assert not wrapper.events(at="start", process="proxy")
        os.kill(wrapper.proc.pid, signal.SIGTERM)
        assert wrapper.wait_exit(SHUTDOWN_TIMEOUT + 3) == 0
        assert_nothing_left(wrapper)


def test_kill_switch_execs_the_app_alone_on_the_original_port(tmp_path: Path) -> None:
    # No options file: a disabled wrapper reads nothing else.
    with running_wrapper(
        tmp_path, example_app("${PORT:-3000}"), TRAFFIC_DUPLICATOR_ENABLED="off"
    ) as wrapper:
        wait_for_port(wrapper.port)
        assert get(wrapper.port, "/") == 200
        assert descendants(wrapper.proc.pid) == []
        cmdline = Path(f"/proc/{wrapper.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[:3] == [
            sys.executable.encode(),
            str(EXAMPLE_APP).encode(),
            str(wrapper.port).encode(),
        ]
        assert not accepts(wrapper.app_port)
        (line,) = wrapper.stderr().splitlines()
        assert "at=disabled" in line
