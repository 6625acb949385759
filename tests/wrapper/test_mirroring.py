"""Traffic through the wrapper: the app answers, both destinations receive a copy.

Real apps (the example WSGI app under wsgiref, `python -m http.server`, gunicorn), the
built-in engines, and the fake `bundle` / `em-proxy` / `gor` of tests/fixtures/bin, which
record the argv the wrapper used and run the built-in engines.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import RecordingServer, wait_until
from tests.wrapper.harness import (
    FIXTURE_BIN,
    SHUTDOWN_TIMEOUT,
    Wrapper,
    assert_nothing_left,
    example_app,
    get,
    port_block,
    request,
    running_wrapper,
    write_options,
)

HEADER = ("X-Mirrored", "yes")
GUNICORN = Path(sys.executable).parent / "gunicorn"


@pytest.fixture
def destinations() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    with RecordingServer() as first, RecordingServer() as second:
        yield first, second


@pytest.fixture
def app_dir(tmp_path: Path, destinations: tuple[RecordingServer, RecordingServer]) -> Path:
    first, second = destinations
    write_options(
        tmp_path,
        "# two destinations, one marker header",
        f"--output-http http://127.0.0.1:{first.port}",
        f"--output-http http://127.0.0.1:{second.port}",
        f"--http-set-header '{HEADER[0]}: {HEADER[1]}'",
    )
    return tmp_path


def mixed_request(i: int) -> tuple[str, str, bytes | None]:
    if i % 2:
        return "POST", f"/items/{i}", (b"body-%d-" % i) * (i * 7 % 300 + 1)
    return "GET", f"/items/{i}?q={i}", None


def received(
    server: RecordingServer, prefix: str
) -> dict[tuple[str, str], list[tuple[bytes, dict[str, str]]]]:
    found: dict[tuple[str, str], list[tuple[bytes, dict[str, str]]]] = {}
    for req in server.snapshot():
        target = req.target.decode()
        if target.startswith(prefix):
            headers = {k.decode().lower(): v.decode() for k, v in req.headers}
            found.setdefault((req.method.decode(), target), []).append((req.body, headers))
    return found


def assert_mirrored(
    destinations: tuple[RecordingServer, RecordingServer],
    sent: list[tuple[str, str, bytes | None]],
    prefix: str,
    timeout: float = 20.0,
) -> None:
    for server in destinations:
        wait_for_copies(server, prefix, len(sent), timeout)
        got = received(server, prefix)
        for method, path, body in sent:
            copies = got[(method, path)]
            assert len(copies) == 1, (method, path, len(copies))
            copy_body, headers = copies[0]
            assert copy_body == (body or b"")
            assert headers[HEADER[0].lower()] == HEADER[1]


def wait_for_copies(server: RecordingServer, prefix: str, count: int, timeout: float) -> None:
    wait_until(
        lambda: len(received(server, prefix)) >= count,
        timeout,
        message=f"destination got {len(received(server, prefix))} of {count}",
    )


def send_mixed(port: int, count: int, prefix: str = "") -> list[tuple[str, str, bytes | None]]:
    sent = []
    for i in range(count):
        method, path, body = mixed_request(i)
        path = prefix + path
        assert request(port, method, path, body) == 200, (method, path)
        sent.append((method, path, body))
    return sent


def test_200_mixed_requests_reach_the_app_and_both_destinations(
    app_dir: Path, destinations: tuple[RecordingServer, RecordingServer]
) -> None:
    with running_wrapper(app_dir, example_app()) as wrapper:
        wrapper.wait_serving()
        mirroring_works(wrapper, destinations)
        sent = send_mixed(wrapper.port, 200)
        assert_mirrored(destinations, sent, "/items/")
        assert wrapper.events(at="engine", process="hop")[0]["framing"] == "gor"


def test_http_server_app_with_a_literal_port(
    app_dir: Path, destinations: tuple[RecordingServer, RecordingServer]
) -> None:
    port = port_block()
    with running_wrapper(
        app_dir, [sys.executable, "-m", "http.server", str(port)], port=port
    ) as wrapper:
        wrapper.wait_serving()
        mirroring_works(wrapper, destinations)
        assert get(port, "/config/gor.options") == 200
        assert wrapper.events(at="rewrite")[0]["old"] == str(port)
        assert_mirrored(destinations, [("GET", "/config/gor.options", None)], "/config/")


@pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is a test dependency")
def test_gunicorn_app_with_bind_and_graceful_stop(
    app_dir: Path, destinations: tuple[RecordingServer, RecordingServer]
) -> None:
    port = port_block()
    examples = str(Path(__file__).resolve().parents[2] / "examples")
    command = [
        str(GUNICORN),
        "--bind",
        f"0.0.0.0:{port}",
        "--chdir",
        examples,
        "--workers",
        "2",
        "app:app",
    ]
    with running_wrapper(app_dir, command, port=port) as wrapper:
        wrapper.wait_serving()
        mirroring_works(wrapper, destinations)
        sent = send_mixed(port, 20, prefix="/g")
        assert_mirrored(destinations, sent, "/g/items/")
        os.kill(wrapper.proc.pid, signal.SIGTERM)
        assert wrapper.wait_exit(SHUTDOWN_TIMEOUT + 3) == 0
        assert_nothing_left(wrapper)


class Load:
    """Requests through $PORT from a thread, counting failures, until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ok = 0
        self.failed: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            method, path, body = mixed_request(i)
            if request(self.port, method, "/load" + path, body) == 200:
                self.ok += 1
            else:
                self.failed.append((method, path))
            i += 1

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_replayer_killed_mid_load_loses_no_primary_request_and_mirroring_resumes(
    app_dir: Path, destinations: tuple[RecordingServer, RecordingServer]
) -> None:
    with running_wrapper(app_dir, example_app()) as wrapper:
        wrapper.wait_serving()
        mirroring_works(wrapper, destinations)
        with Load(wrapper.port) as load:
            wait_until(lambda: load.ok >= 30, 10)
            os.kill(wrapper.pid_of("replayer"), signal.SIGKILL)
            wrapper.wait_event(at="start", process="replayer", restart="1")
            before = load.ok
            wait_until(lambda: load.ok >= before + 30, 10)
        assert load.failed == []
        # Mirroring resumes: requests sent once the replayer is back all arrive.
        mirroring_works(wrapper, destinations)


def test_proxy_killed_is_restarted_and_mirrors_again(
    app_dir: Path, destinations: tuple[RecordingServer, RecordingServer]
) -> None:
    with running_wrapper(app_dir, example_app()) as wrapper:
        wrapper.wait_serving()
        mirroring_works(wrapper, destinations)
        os.kill(wrapper.pid_of("proxy"), signal.SIGKILL)
        wrapper.wait_event(at="start", process="proxy", restart="1")
        mirroring_works(wrapper, destinations)


def mirroring_works(
    wrapper: Wrapper, destinations: tuple[RecordingServer, RecordingServer]
) -> None:
    """Wait until a fresh batch arrives complete at both destinations.

    Copies made while the replayer is (re)starting are dropped by design (the proxy never
    waits for the mirror path), so a test of steady-state mirroring starts once it works.
    """
    deadline = time.monotonic() + 15
    batch = 0
    while True:
        batch += 1
        path = f"/warmup{batch}"
        wait_until(lambda: get(wrapper.port, "/", timeout=1) is not None, 10)
        get(wrapper.port, path)
        try:
            for server in destinations:
                wait_for_copies(server, path, 1, timeout=2)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def recorded_argv(workdir: Path, name: str) -> list[list[str]]:
    """Every argv a fake engine recorded, oldest first."""
    files = sorted(workdir.glob(f"{name}.*"), key=lambda p: p.stat().st_mtime_ns)
    return [p.read_bytes().decode().split("\0")[:-1] for p in files]


OPTION_WORDS = 6  # the three flags of the app_dir fixture, each with its value


def test_bundled_em_proxy_runs_as_designed_and_feeds_the_builtin_replayer(
    app_dir: Path, destinations: tuple[RecordingServer, RecordingServer]
) -> None:
    (app_dir / "Gemfile.lock").write_text(
        "GEM\n  specs:\n    em-proxy (0.1.9)\n\nDEPENDENCIES\n  em-proxy\n"
    )
    with running_wrapper(app_dir, example_app(), fixtures_on_path=True) as wrapper:
        wrapper.wait_serving()
        mirroring_works(wrapper, destinations)
        p = wrapper.port
        design = ["-l", str(p), "-r", f"127.0.0.1:{p + 1}", "-d", f"127.0.0.1:{p + 2}"]
        assert recorded_argv(app_dir, "bundle") == [["exec", "em-proxy", *design]]
        assert recorded_argv(app_dir, "em-proxy") == [design]
        assert (
            wrapper.events(at="engine", process="proxy")[0]["reason"]
            == "Gemfile.lock lists em-proxy"
        )
        assert wrapper.events(at="engine", process="hop")[0]["framing"] == "http"
        sent = send_mixed(p, 20)
        assert_mirrored(destinations, sent, "/items/")


@pytest.mark.parametrize("version", ["old", "new"])
def test_gor_runs_as_designed_for_its_version(
    app_dir: Path, destinations: tuple[RecordingServer, RecordingServer], version: str
) -> None:
    # The new gor sits in the app's bin/; the old one is named by TRAFFIC_DUPLICATOR_GOR.
    extra = {"FAKE_GOR_VERSION": version}
    if version == "old":
        extra["TRAFFIC_DUPLICATOR_GOR"] = str(FIXTURE_BIN / "gor")
    else:
        (app_dir / "bin").mkdir()
        shutil.copy(FIXTURE_BIN / "gor", app_dir / "bin" / "gor")
    with running_wrapper(app_dir, example_app(), extra=extra) as wrapper:
        wrapper.wait_serving()
        mirroring_works(wrapper, destinations)
        p = wrapper.port
        help_call, run = recorded_argv(app_dir, "gor")
        assert help_call == ["--help"]
        input_flag = "--input-http" if version == "old" else "--input-tcp"
        assert run[:2] == [input_flag, f"127.0.0.1:{p + 2}"]
        assert len(run) == 2 + OPTION_WORDS
        proxy_start = wrapper.events(at="start", process="proxy")[0]["command"]
        target = f"127.0.0.1:{p + 2}" if version == "old" else f"gor://127.0.0.1:{p + 2}"
        assert f"-d {target} " in proxy_start
        sent = send_mixed(p, 20)
        assert_mirrored(destinations, sent, "/items/")


def test_bundled_em_proxy_with_an_old_gor(
    app_dir: Path, destinations: tuple[RecordingServer, RecordingServer]
) -> None:
    (app_dir / "Gemfile.lock").write_text("GEM\n  specs:\n    em-proxy (0.1.9)\n")
    extra = {"FAKE_GOR_VERSION": "old", "TRAFFIC_DUPLICATOR_GOR": str(FIXTURE_BIN / "gor")}
    with running_wrapper(app_dir, example_app(), fixtures_on_path=True, extra=extra) as wrapper:
        wrapper.wait_serving()
        mirroring_works(wrapper, destinations)
        p = wrapper.port
        assert recorded_argv(app_dir, "bundle")[0][:3] == ["exec", "em-proxy", "-l"]
        assert recorded_argv(app_dir, "gor")[-1][:2] == ["--input-http", f"127.0.0.1:{p + 2}"]
        sent = send_mixed(p, 10)
        assert_mirrored(destinations, sent, "/items/")
