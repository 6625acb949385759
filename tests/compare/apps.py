"""Running the comparison tests' app (shadow_app.py) and reading comparison results."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support import free_port, python_env, running, wait_for_port, wait_until
from traffic_duplicator import gorproto
from traffic_duplicator.report import cli as report_cli

APP = Path(__file__).resolve().parent / "shadow_app.py"
ROLES = ("production", "baseline", "candidate")


def app_argv(port: int | str, role: str) -> list[str]:
    return [sys.executable, str(APP), str(port), role]


@contextlib.contextmanager
def shadow_app(role: str) -> Iterator[int]:
    """shadow_app.py in `role`, on a free port; yields the port."""
    port = free_port()
    with running(app_argv(port, role), env=python_env()):
        wait_for_port(port)
        yield port


def exchange(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send one request that closes its connection; the raw response, read to the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def request_bytes(method: str, target: str, headers: str = "", body: bytes = b"") -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body or method == "POST" else ""
    return (
        f"{method} {target} HTTP/1.1\r\nHost: app.example.com\r\n{headers}{length}\r\n".encode()
        + body
    )


def closing(request: bytes) -> bytes:
    """The same request, asking the server to close the connection after answering."""
    return request.replace(b"\r\n", b"\r\nConnection: close\r\n", 1)


def request_frame(message_id: bytes, request: bytes) -> bytes:
    return gorproto.encode(request, gorproto.REQUEST, message_id)


def production_frame(message_id: bytes, response: bytes, latency_ms: float) -> bytes:
    """Production's response as the tee proxy sends it with --compare (type 2)."""
    return gorproto.encode(response, gorproto.RESPONSE, message_id, latency=int(latency_ms * 1e6))


def send_frames(port: int, frames: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"".join(frames))


def report_rows(*logs: Path) -> list[dict[str, Any]]:
    """The report's --json rows for these log files (the real report code)."""
    out = io.StringIO()
    status = report_cli.run([*map(str, logs), "--json"], out)
    assert status == 0
    rows: list[dict[str, Any]] = json.loads(out.getvalue())["rows"]
    return rows


def compare_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "at=compare " in line]


def wait_compared(log: Path, total: int, timeout: float = 20.0) -> None:
    """Until the at=compare lines in `log` add up to `total` answers (compared + errors)."""

    def done() -> bool:
        text = log.read_text(errors="replace")
        if not compare_lines(text):
            return False
        rows = report_rows(log)
        return sum(int(row["compared"]) + int(row["errors"]) for row in rows) >= total

    wait_until(done, timeout, interval=0.2, message=f"fewer than {total} comparisons:\n"
               + log.read_text(errors="replace")[-3000:])  # fmt: skip
