"""Helpers for the replayer's tests: a running replayer, a client, a TLS recording server."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import (
    RecordingServer,
    engine_argv,
    free_port,
    python_env,
    running,
    wait_for_port,
    wait_until,
)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@dataclass
class Replayer:
    """A replayer process started by a test; its stderr goes to a file we can read."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stats(self, output: str | None = None, final: bool = True) -> dict[str, str]:
        """The last `at=stats` line (for an output, or the input line) as a dict."""
        found: dict[str, str] = {}
        for line in self.log().splitlines():
            fields = dict(re.findall(r'(\w+)=("[^"]*"|\S*)', line))
            if fields.get("at") != "stats" or (final and fields.get("final") != "true"):
                continue
            if (output is None and "input" in fields) or fields.get("output") == output:
                found = fields
        return found


@contextlib.contextmanager
def replayer(
    tmp_path: Path, *args: str, input_flag: str = "--input-http", env: dict[str, str] | None = None
) -> Iterator[Replayer]:
    port = free_port()
    log_path = tmp_path / f"replayer-{port}.log"
    argv = engine_argv("traffic_duplicator.replay", input_flag, f"127.0.0.1:{port}", *args)
    with (
        log_path.open("wb") as log,
        running(argv, env=python_env(**(env or {})), stderr=log, stdout=subprocess.DEVNULL) as proc,
    ):
        try:
            wait_for_port(port)
        except AssertionError:
            raise AssertionError(f"replayer did not start:\n{log_path.read_text()}") from None
        yield Replayer(proc, port, log_path)


def send(port: int, *requests: bytes, timeout: float = 10.0) -> bytes:
    """Send requests on one keep-alive connection; return all bytes answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"".join(requests))
        received = b""
        deadline = time.monotonic() + timeout
        while received.count(b"HTTP/1.1 ") < len(requests) and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def get(target: str = "/", headers: str = "", method: str = "GET") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: app.example.com\r\n{headers}\r\n".encode()


def wait_count(server: RecordingServer, count: int, timeout: float = 10.0) -> None:
    wait_until(
        lambda: server.count() >= count,
        timeout,
        message=f"destination received {server.count()} of {count} requests",
    )


@pytest.fixture
def dest() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


# --- TLS ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def test_cert(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return CertFiles(cert, key)


class TlsRecordingServer(RecordingServer):
    """RecordingServer behind TLS; failed handshakes are counted, not fatal."""

    def __init__(self, cert: CertFiles) -> None:
        super().__init__()
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert.cert, cert.key)
        self.handshake_failures = 0

    def wrap(self, conn: socket.socket) -> socket.socket | None:
        conn.settimeout(5)
        try:
            return self._context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            with self._lock:
                self.handshake_failures += 1
            return None


@pytest.fixture
def tls_dest(test_cert: CertFiles) -> Iterator[TlsRecordingServer]:
    server = TlsRecordingServer(test_cert)
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = [
    "OK",
    "CertFiles",
    "Replayer",
    "TlsRecordingServer",
    "get",
    "replayer",
    "send",
    "wait_count",
    "wait_for_port",
]
