"""Shared test helpers: free ports, waiting for listeners, processes that are always cleaned up,
and a recording HTTP server that keeps the raw bytes of each request it receives."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import h11

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_block(count: int) -> int:
    """A base port such that base .. base+count-1 were all free (for PORT, PORT+1, PORT+2).

    Picked below Linux's ephemeral range (32768+), where outgoing connections from other
    tests would otherwise grab a port of the block between our check and its use.
    """
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(20000, 32768 - count)
        socks = []
        try:
            for offset in range(count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return base
    raise RuntimeError("no block of free ports found")


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts on host:port, or fail the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listened on {host}:{port} within {timeout}s")


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "") -> None:  # type: ignore[no-untyped-def]
    """Poll `predicate` until it is true, or fail the test with `message`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout}s")


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python that imports this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    # The test extra installs uvloop for in-process tests on both loops; child engines run
    # on asyncio unless TEST_UVLOOP=1 (or a test says otherwise).
    env["TRAFFIC_DUPLICATOR_UVLOOP"] = os.environ.get("TEST_UVLOOP", "0")
    env.update(extra)
    return env


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    stop_timeout: float = 10.0,
    **popen: object,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a process in its own session; on exit SIGTERM then SIGKILL its whole group."""
    proc = subprocess.Popen(  # type: ignore[call-overload]
        list(argv),
        env=env if env is not None else python_env(),
        cwd=cwd,
        start_new_session=True,
        **popen,
    )
    try:
        yield proc
    finally:
        stop_group(proc, stop_timeout)


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM a process group, wait, then SIGKILL whatever is left, and reap."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def engine_argv(module: str, *args: str) -> list[str]:
    """argv that runs one of our modules with the interpreter running the tests."""
    return [sys.executable, "-m", module, *args]


def run_module(module: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run one of our modules to completion (for commands that exit at once), text output."""
    return subprocess.run(
        engine_argv(module, *args),
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class RecordedRequest:
    """One request as a destination saw it: the raw bytes and h11's reading of them."""

    raw: bytes
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


ServerT = TypeVar("ServerT", bound="ThreadedServer")


class ThreadedServer:
    """An accept loop on 127.0.0.1 in a thread, each connection handled in a thread of its own.

    Subclasses implement `handle(conn)`; `wrap(conn)` may replace the socket first (TLS)
    or return None to drop it. `accepted` counts connections.
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.accepted = 0
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self: ServerT) -> ServerT:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        sock.settimeout(0.2)
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._spawn(self._accept_loop)
        return self

    def _spawn(self, target, *args) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
                self.accepted += 1
            self._spawn(self._guard, conn)

    def _guard(self, conn: socket.socket) -> None:
        try:
            wrapped = self.wrap(conn)
            if wrapped is None:
                return
            if wrapped is not conn:
                with self._lock:
                    self._conns.append(wrapped)
            self.handle(wrapped)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def wrap(self, conn: socket.socket) -> socket.socket | None:
        return conn

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            for conn in self._conns:
                # shutdown() wakes a thread blocked in recv(); close() alone does not.
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    conn.close()
        for thread in self._threads:
            thread.join(2)

    def __enter__(self: ServerT) -> ServerT:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RecordingServer(ThreadedServer):
    """A threaded HTTP/1.1 server on 127.0.0.1 that answers 200 and records raw requests.

    Framing uses h11, an independent parser, so tests do not trust our own framer.
    `delay` slows every answer; `read` False accepts connections and never reads them.
    """

    def __init__(
        self,
        port: int = 0,
        delay: float = 0.0,
        read: bool = True,
        response_body: bytes = b"ok",
    ) -> None:
        super().__init__(port)
        self.delay = delay
        self.read = read
        self.response_body = response_body
        self.requests: list[RecordedRequest] = []

    def handle(self, conn: socket.socket) -> None:
        if not self.read:
            self._stopping.wait()
            return
        self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
        raw = bytearray()
        pending: RecordedRequest | None = None
        body = bytearray()
        try:
            while not self._stopping.is_set():
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        continue
                    parser.receive_data(data)
                    raw += data
                    if not data:
                        return
                    continue
                if isinstance(event, h11.Request):
                    pending = RecordedRequest(
                        b"", event.method, event.target, list(event.headers.raw_items()), b""
                    )
                    body.clear()
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    assert pending is not None
                    pending.body = bytes(body)
                    # The raw bytes of this request are what the parser consumed so far.
                    consumed = len(raw) - len(parser.trailing_data[0])
                    pending.raw = bytes(raw[:consumed])
                    del raw[:consumed]
                    with self._lock:
                        self.requests.append(pending)
                    if self.delay:
                        time.sleep(self.delay)
                    reply = (
                        parser.send(
                            h11.Response(
                                status_code=200,
                                headers=[("Content-Length", str(len(self.response_body)))],
                            )
                        )
                        or b""
                    )
                    if pending.method != b"HEAD":  # h11 refuses a body for HEAD
                        reply += parser.send(h11.Data(data=self.response_body)) or b""
                    reply += parser.send(h11.EndOfMessage()) or b""
                    conn.sendall(reply)
                    if parser.our_state is h11.MUST_CLOSE:
                        return
                    parser.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except (OSError, h11.RemoteProtocolError, h11.LocalProtocolError):
            return
        finally:
            conn.close()

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.requests)
