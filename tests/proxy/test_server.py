"""The process: binding, signals and the drain, counters, and start-up mistakes."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.proxy.servers import CORES, AppServer, Client, Response, proxy
from tests.support import RecordingServer, engine_argv, free_port, python_env, wait_until
from traffic_duplicator.addr import has_ipv6
from traffic_duplicator.proxy.config import EPOLL_ENV

EXIT_WAIT = 15.0


@pytest.mark.parametrize("core", CORES)
def test_sigterm_closes_idle_connections_at_once_and_lets_in_flight_ones_finish(
    tmp_path: Path, core: str
) -> None:
    with (
        AppServer() as app,
        RecordingServer() as mirror,
        proxy(tmp_path, app.port, f"127.0.0.1:{mirror.port}", core=core) as front,
    ):
        idle = Client(front.port)
        assert idle.request("GET", "/idle").status == 200
        busy = Client(front.port)
        answers: list[Response] = []
        reader = threading.Thread(target=lambda: answers.append(busy.read()))
        busy.send(b"GET /slow?delay=2 HTTP/1.1\r\nHost: a\r\n\r\n")
        wait_until(lambda: any(r[1].startswith(b"/slow") for r in app.requests), message="slow")
        reader.start()
        front.proc.send_signal(signal.SIGTERM)
        # The idle keep-alive connection is closed at once.
        idle.sock.settimeout(1.5)
        assert idle.sock.recv(1) == b""
        # No new connections.
        wait_until(lambda: _refused(front.port), timeout=3, message="still accepting")
        # The request in flight gets its whole response, then its connection closes.
        reader.join(10)
        assert [a.body for a in answers] == [b"GET /slow?delay=2"]
        assert busy.file.read() == b""
        assert front.proc.wait(EXIT_WAIT) == 0
        idle.close()
        busy.close()
    log = front.log()
    assert "at=shutdown signal=SIGTERM open=2" in log
    assert "requests=2" in log.splitlines()[-2]  # the final counters
    assert log.splitlines()[-1] == "at=exit status=0 cut=0"


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


@pytest.mark.parametrize("core", CORES)
def test_the_drain_timeout_cuts_an_exchange_that_takes_too_long(tmp_path: Path, core: str) -> None:
    with (
        AppServer() as app,
        proxy(tmp_path, app.port, args=("--drain-timeout", "0.5"), core=core) as front,
        Client(front.port) as client,
    ):
        # The app would take a minute: the proxy exits within EXIT_WAIT only if the drain
        # timeout cut the exchange.
        client.send(b"GET /slow?delay=60 HTTP/1.1\r\nHost: a\r\n\r\n")
        wait_until(lambda: len(app.requests) == 1, message="request in flight")
        front.proc.send_signal(signal.SIGINT)
        assert front.proc.wait(EXIT_WAIT) == 0
        with pytest.raises(ConnectionError):
            client.read()
    assert front.log().splitlines()[-1] == "at=exit status=0 cut=1"


def test_stats_line_every_interval(tmp_path: Path) -> None:
    with (
        AppServer() as app,
        RecordingServer() as mirror,
        proxy(
            tmp_path, app.port, f"127.0.0.1:{mirror.port}", args=("--stats-interval", "0.3")
        ) as front,
    ):
        with Client(front.port) as client:
            for _ in range(3):
                assert client.request("GET", "/counted").status == 200
        wait_until(lambda: any(s.get("mirrored") == "3" for s in front.stats()), message="stats")
    line = front.stats()[-1]
    assert line["requests"] == line["mirrored"] == "3"
    assert line["target"] == f"127.0.0.1:{mirror.port}"
    assert (line["dropped"], line["failed"]) == ("0", "0")


def test_a_port_in_use_exits_2_with_one_line_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            engine_argv("traffic_duplicator.proxy", "-l", f"127.0.0.1:{port}", "-r", "127.0.0.1:9"),
            env=python_env(),
            capture_output=True,
            check=False,
            timeout=30,
        )
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert f"port {port} is already in use" in lines[0]


@pytest.mark.parametrize(
    ("extra", "env", "line"),
    [
        (["-x"], {}, 'at=error error="unrecognized arguments: -x (see --help)"'),
        (
            [],
            {EPOLL_ENV: "maybe"},
            f"at=error error=\"{EPOLL_ENV}='maybe' is not understood; use 0, false, no or off "
            'to relay on asyncio protocols (1, true, yes, on or unset keep the epoll core)"',
        ),
    ],
)
def test_a_bad_flag_or_config_var_exits_2_with_one_line(
    extra: list[str], env: dict[str, str], line: str
) -> None:
    result = subprocess.run(
        engine_argv("traffic_duplicator.proxy", "-l", "5000", "-r", "127.0.0.1:5001", *extra),
        env=python_env(**env),
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [line]


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 on this host")
def test_listens_dual_stack(tmp_path: Path) -> None:
    with AppServer() as app, proxy(tmp_path, app.port) as front:
        for host in ("127.0.0.1", "::1"):
            with Client(front.port, host=host) as client:
                assert client.request("GET", f"/from/{host}").status == 200
    assert "address=[::]:" in front.log()


@pytest.mark.parametrize("core", CORES)
def test_the_app_is_awaited_briefly_at_start(tmp_path: Path, core: str) -> None:
    app_port = free_port()
    with proxy(tmp_path, app_port, core=core) as front, Client(front.port) as client:
        client.send(b"GET /early HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(0.3)  # the app is still starting
        with AppServer(port=app_port):
            assert client.read().body == b"GET /early"
