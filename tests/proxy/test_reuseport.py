"""`--processes N`: N processes share the port, all relay and mirror, one signal drains all."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.proxy.servers import AppServer, Client, Response, proxy
from tests.support import RecordingServer, engine_argv, free_port, python_env, wait_until
from traffic_duplicator.errors import UserError
from traffic_duplicator.proxy.cli import parse_args
from traffic_duplicator.proxy.workers import worker_argv

EXIT_WAIT = 20.0
CONNECTIONS = 40


def _pids(log: str, at: str) -> set[str]:
    return set(re.findall(rf"^at={at} .*?pid=(\d+)", log, re.MULTILINE))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_every_process_relays_and_mirrors_and_sigterm_drains_them_all(tmp_path: Path) -> None:
    with (
        AppServer() as app,
        RecordingServer() as mirror,
        proxy(tmp_path, app.port, f"127.0.0.1:{mirror.port}", args=("--processes", "2")) as front,
    ):
        wait_until(lambda: len(_pids(front.log(), "listening")) == 2, timeout=15)
        workers = [int(pid) for pid in _pids(front.log(), "worker_start")]
        assert len(workers) == 1
        # New connections, one request each: the kernel spreads them over both sockets.
        for index in range(CONNECTIONS):
            with Client(front.port) as client:
                assert (
                    client.request("GET", f"/spread/{index}").body
                    == f"GET /spread/{index}".encode()
                )
        wait_until(
            lambda: sum(r.target.startswith(b"/spread/") for r in mirror.snapshot()) == CONNECTIONS,
            message="every request mirrored",
        )
        # Requests in flight on several connections when the first process gets SIGTERM.
        answers: list[Response] = []
        clients = [Client(front.port) for _ in range(6)]
        for client in clients:
            client.send(b"GET /slow?delay=1.5 HTTP/1.1\r\nHost: a\r\n\r\n")
        readers = [threading.Thread(target=lambda c=c: answers.append(c.read())) for c in clients]
        for reader in readers:
            reader.start()
        wait_until(
            lambda: sum(r[1].startswith(b"/slow") for r in app.requests) == 6, message="slow"
        )
        front.proc.send_signal(signal.SIGTERM)
        for reader in readers:
            reader.join(15)
        assert sorted(a.body for a in answers) == [b"GET /slow?delay=1.5"] * 6
        assert front.proc.wait(EXIT_WAIT) == 0
        wait_until(lambda: not any(_alive(pid) for pid in workers), message="workers exited")
        for client in clients:
            client.close()
    log = front.log()
    exits = [line for line in log.splitlines() if line.startswith("at=exit ")]
    assert exits == ["at=exit status=0 cut=0"] * 2, log
    served = [int(m) for m in re.findall(r"^at=stats connections=(\d+)", log, re.MULTILINE)]
    assert len(served) == 2 and all(served), f"both processes took connections: {served}"
    assert sum(served) == CONNECTIONS + 6 + 1  # and the start-up probe of proxy()
    assert re.search(r"^at=worker_exit worker=1 pid=\d+ status=0$", log, re.MULTILINE)


def test_a_worker_that_dies_is_restarted(tmp_path: Path) -> None:
    with AppServer() as app, proxy(tmp_path, app.port, args=("--processes", "2")) as front:
        wait_until(lambda: len(_pids(front.log(), "listening")) == 2, timeout=15)
        (first,) = (int(pid) for pid in _pids(front.log(), "worker_start"))
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: len(_pids(front.log(), "worker_start")) == 2, timeout=15)
        wait_until(lambda: len(_pids(front.log(), "listening")) == 3, timeout=15)
        for index in range(10):
            with Client(front.port) as client:
                assert client.request("GET", f"/after/{index}").status == 200
    assert f"at=worker_exit worker=1 pid={first} status=-9" in front.log()


def test_a_port_in_use_is_refused_before_any_worker_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            engine_argv(
                "traffic_duplicator.proxy", "-l", f"127.0.0.1:{port}", "-r", str(free_port()),
                "--processes", "3",
            ),
            env=python_env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and f"port {port} is already in use" in done.stderr
    assert "worker_start" not in done.stderr


def test_processes_come_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["-l", "5000", "-r", "5001"]
    assert parse_args(base).processes == 1
    assert parse_args([*base, "--processes", "4"]).processes == 4
    monkeypatch.setenv("TRAFFIC_DUPLICATOR_PROXY_PROCESSES", "3")
    assert parse_args(base).processes == 3
    assert parse_args([*base, "--processes", "2"]).processes == 2


def test_a_worker_gets_the_same_settings() -> None:
    first = ["-l", "[::1]:5000", "-r", "5001", "-d", "gor://127.0.0.1:5002,127.0.0.1:5003"]
    config = parse_args(
        [*first, "--mirror-buffer", "512k", "--drain-timeout", "7.5", "--processes", "2", "-v"]
    )
    argv = worker_argv(config, 7, 9)
    again = parse_args(argv[3:])
    assert again.listen == config.listen and again.relay == config.relay
    assert again.targets == config.targets and again.mirror == config.mirror
    assert again.drain_timeout == 7.5 and again.verbose
    assert again.processes == 1
    assert argv[argv.index("--worker-fds") + 1] == "7,9"


@pytest.mark.parametrize("value", ["0", "abc", "1000", "-1", "٣"])
def test_a_bad_processes_var_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TRAFFIC_DUPLICATOR_PROXY_PROCESSES", value)
    with pytest.raises(UserError, match=r"PROXY_PROCESSES=.* use a whole number from 1 to 16"):
        parse_args(["-l", "5000", "-r", "5001"])
    with pytest.raises(UserError, match=r"--processes .* is not a number from 1 to 16"):
        parse_args(["-l", "5000", "-r", "5001", "--processes", value])
