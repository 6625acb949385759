"""Real servers and clients for the proxy's tests: an app, byte sinks, misbehaving targets.

Everything listens on 127.0.0.1 with threads, so tests drive real sockets end to end.
The app frames requests with h11 (an independent parser), never with our own framer.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h11

from tests.support import (
    ThreadedServer,
    engine_argv,
    free_port,
    python_env,
    running,
    wait_for_port,
)

PATTERN = bytes(range(256)) * 4096  # 1 MiB of a known pattern, for big bodies
SEND_CHUNK = 1 << 20


def pattern_bytes(size: int) -> Iterator[bytes]:
    """`size` bytes of PATTERN, in large pieces (big sendall calls keep tests fast)."""
    left = size
    while left > 0:
        piece = PATTERN[: min(left, len(PATTERN))]
        left -= len(piece)
        yield piece


def _query(target: bytes) -> dict[str, str]:
    _, _, query = target.decode().partition("?")
    return dict(item.partition("=")[::2] for item in query.split("&") if item)


class AppServer(ThreadedServer):
    """The app behind the proxy, framed by h11. Paths:

    /upload          reads the body, answers `<length> <sha256>` (?pause=S: wait first)
    /download?size=N answers N bytes of PATTERN
    /slow?delay=S    answers after S seconds
    /ws              answers 101 and then echoes raw bytes (a WebSocket stand-in)
    /close           answers with Connection: close and closes
    anything else    answers `<METHOD> <target>`
    """

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self.requests: list[tuple[bytes, bytes]] = []  # (method, target) in arrival order

    def handle(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
        digest = hashlib.sha256()
        length = 0
        request: h11.Request | None = None
        while not self._stopping.is_set():
            event = parser.next_event()
            if event is h11.NEED_DATA:
                data = conn.recv(SEND_CHUNK)
                parser.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.Request):
                request = event
                digest, length = hashlib.sha256(), 0
                with self._lock:
                    self.requests.append((event.method, event.target))
                if event.target.startswith(b"/upload?pause="):
                    time.sleep(float(_query(event.target)["pause"]))  # a slow app
                if parser.they_are_waiting_for_100_continue:
                    conn.sendall(
                        parser.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
                    )
                if event.target == b"/ws":
                    conn.sendall(
                        b"HTTP/1.1 101 Switching Protocols\r\n"
                        b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                    )
                    self._echo(conn, parser.trailing_data[0])
                    return
            elif isinstance(event, h11.Data):
                digest.update(event.data)
                length += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                if not self._respond(conn, parser, request, length, digest):
                    return
                parser.start_next_cycle()
            else:
                return

    def _respond(
        self,
        conn: socket.socket,
        parser: h11.Connection,
        request: h11.Request,
        length: int,
        digest: hashlib._Hash,
    ) -> bool:
        path = request.target.split(b"?")[0]
        query = _query(request.target)
        headers = [("Content-Type", "text/plain")]
        if path == b"/slow":
            time.sleep(float(query.get("delay", "1")))
        if path == b"/download":
            size = int(query["size"])
            headers.append(("Content-Length", str(size)))
            conn.sendall(parser.send(h11.Response(status_code=200, headers=headers)) or b"")
            for piece in pattern_bytes(size):
                conn.sendall(parser.send(h11.Data(data=piece)) or b"")
            conn.sendall(parser.send(h11.EndOfMessage()) or b"")
            return parser.our_state is not h11.MUST_CLOSE
        if path == b"/upload":
            body = b"%d %s" % (length, digest.hexdigest().encode())
        else:
            body = request.method + b" " + request.target
        if path == b"/close":
            headers.append(("Connection", "close"))
        headers.append(("Content-Length", str(len(body))))
        reply = parser.send(h11.Response(status_code=200, headers=headers)) or b""
        if request.method != b"HEAD":
            reply += parser.send(h11.Data(data=body)) or b""
        reply += parser.send(h11.EndOfMessage()) or b""
        conn.sendall(reply)
        return parser.our_state is not h11.MUST_CLOSE

    def _echo(self, conn: socket.socket, pending: bytes) -> None:
        if pending:
            conn.sendall(pending)
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)


class Sink(ThreadedServer):
    """Reads every byte each connection sends and never answers (a gor:// target)."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self.chunks: dict[int, bytearray] = {}

    def handle(self, conn: socket.socket) -> None:
        key = id(conn)
        with self._lock:
            self.chunks[key] = bytearray()
        while True:
            data = conn.recv(SEND_CHUNK)
            if not data:
                return
            with self._lock:
                self.chunks[key] += data

    def streams(self) -> list[bytes]:
        with self._lock:
            return [bytes(data) for data in self.chunks.values()]

    def total(self) -> int:
        with self._lock:
            return sum(len(data) for data in self.chunks.values())


class Stalled(ThreadedServer):
    """Accepts connections and never reads them (`accepted` counts them)."""

    def handle(self, conn: socket.socket) -> None:
        self._stopping.wait()


class EchoServer(ThreadedServer):
    """Sends every byte back: a relay target for bytes that are not HTTP."""

    def handle(self, conn: socket.socket) -> None:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)


class ResettingServer(ThreadedServer):
    """Accepts, optionally reads `after` bytes, then resets the connection."""

    def __init__(self, after: int = 0) -> None:
        super().__init__()
        self.after = after

    def handle(self, conn: socket.socket) -> None:
        got = 0
        while got < self.after:
            data = conn.recv(65536)
            if not data:
                break
            got += len(data)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


class AnswersThenCloses(ThreadedServer):
    """An app that reads a request, then sends `response` and its FIN in one segment
    (MSG_MORE, then close): the proxy gets both in one event."""

    def __init__(self, response: bytes) -> None:
        super().__init__()
        self.response = response

    def handle(self, conn: socket.socket) -> None:
        conn.recv(65536)
        conn.send(self.response, socket.MSG_MORE)


# ---- the proxy under test ---------------------------------------------------------------

# The two relay cores (proxy/poller.py and proxy/relay.py), for tests that run on both.
CORES = ("epoll", "protocols")


@dataclass
class Proxy:
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stats(self) -> list[dict[str, str]]:
        """Every `at=stats` line logged so far, as dicts."""
        return [
            dict(re.findall(r"(\w+)=(\S*)", line))
            for line in self.log().splitlines()
            if line.startswith("at=stats ")
        ]

    def vm(self, field_name: str) -> int:
        """VmRSS / VmHWM of the proxy process, in bytes."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(rf"^{field_name}:\s+(\d+) kB", status, re.MULTILINE)
        assert match, status
        return int(match.group(1)) * 1024


@contextlib.contextmanager
def proxy(
    tmp_path: Path,
    app_port: int,
    *duplex: str,
    args: tuple[str, ...] = (),
    core: str = "epoll",
) -> Iterator[Proxy]:
    """Run the proxy as a real process in front of `app_port`, mirroring to `duplex`;
    `core`: "epoll" (the default where Linux has it) or "protocols" (the fallback)."""
    port = free_port()
    argv = ["-l", str(port), "-r", f"127.0.0.1:{app_port}", *args]
    if duplex:
        argv += ["-d", ",".join(duplex)]
    log_path = tmp_path / f"proxy-{port}.log"
    with (
        log_path.open("wb") as log,
        running(
            engine_argv("traffic_duplicator.proxy", *argv),
            env=python_env(
                TRAFFIC_DUPLICATOR_UVLOOP=os.environ.get("TEST_UVLOOP", "0"),
                TRAFFIC_DUPLICATOR_EPOLL="0" if core == "protocols" else "1",
            ),
            stderr=log,
        ) as proc,
    ):
        wait_for_port(port, timeout=15)
        yield Proxy(port, proc, log_path)


# ---- a small HTTP client over raw sockets ------------------------------------------------


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class Client:
    """One keep-alive client connection; sends raw bytes, reads responses one by one."""

    def __init__(self, port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, target: str, body: bytes = b"", headers: str = "") -> Response:
        head = f"{method} {target} HTTP/1.1\r\nHost: test\r\n{headers}"
        if body or method in ("POST", "PUT"):
            head += f"Content-Length: {len(body)}\r\n"
        self.send(head.encode() + b"\r\n" + body)
        return self.read(head_request=method == "HEAD")

    def read(self, head_request: bool = False) -> Response:
        line = self.file.readline()
        if not line:
            raise ConnectionError("closed before a response")
        status = int(line.split()[1])
        headers = []
        while True:
            line = self.file.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            headers.append((name, value.strip()))
        response = Response(status, headers, b"")
        length = response.header(b"content-length")
        if status < 200 or head_request or status in (204, 304):
            return response
        if length is not None:
            response.body = self.file.read(int(length))
        return response

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- an app that answers an upload early ----------------------------------------------

TOO_LARGE = b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class RefusesUploads(ThreadedServer):
    """An app that answers 413 after the head, while the body still comes, and sends its
    FIN with it; then it reads on until the proxy closes (a lingering close, as nginx's
    `lingering_close`): the proxy's writes do not fail. `ended` counts the requests'
    connections the proxy closed."""

    def __init__(self) -> None:
        super().__init__()
        self.ended: list[None] = []  # appended from the connections' threads

    def handle(self, conn: socket.socket) -> None:
        if not conn.recv(1000):
            return  # a connection without a request (the proxy's readiness probe)
        time.sleep(0.3)  # the upload fills the socket buffers and the proxy's meanwhile
        conn.send(TOO_LARGE, socket.MSG_MORE)
        conn.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            while conn.recv(65536):
                pass
        self.ended.append(None)


UPLOAD_HEAD = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000\r\n\r\n"


def upload_forever(sock: socket.socket, chunks: int = 1000) -> OSError | None:
    """Send a body much larger than every buffer on the way (`chunks` MiB, of a 1 GB
    Content-Length), until the socket fails: the failure, or None if all was sent."""
    chunk = b"x" * (1 << 20)
    try:
        sock.sendall(UPLOAD_HEAD)
        for _ in range(chunks):
            sock.sendall(chunk)
    except OSError as exc:
        return exc
    return None
