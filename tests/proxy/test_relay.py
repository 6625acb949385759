"""The primary path through a real proxy process: faithful relay, framing-aware mirroring.

Every test runs on both relay cores: epoll (the default) and asyncio protocols."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.proxy.servers import CORES, AppServer, Client, EchoServer, Proxy, proxy
from tests.support import RecordingServer, wait_until

PIPELINED = [
    b"GET /relay/pipe/1 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /relay/pipe/2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /relay/pipe/3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;name=v\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
    b"HEAD /relay/pipe/4 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /relay/pipe/5 HTTP/1.1\r\nHost: a\r\n\r\n",
]


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    with AppServer() as server:
        yield server


@pytest.fixture(scope="module", params=CORES)
def core(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def mirror(core: str) -> Iterator[RecordingServer]:
    # One per core: the tests count the copies they made.
    with RecordingServer() as server:
        yield server


@pytest.fixture(scope="module")
def front(
    tmp_path_factory: pytest.TempPathFactory, app: AppServer, mirror: RecordingServer, core: str
) -> Iterator[Proxy]:
    with proxy(
        tmp_path_factory.mktemp("relay"), app.port, f"127.0.0.1:{mirror.port}", core=core
    ) as running:
        wait_until(lambda: f" core={core} " in running.log(), message="the core in use")
        yield running


def mirrored(mirror: RecordingServer, prefix: bytes) -> list[bytes]:
    return sorted(r.raw for r in mirror.snapshot() if r.target.startswith(prefix))


def test_pipelined_and_chunked_requests_reach_app_and_mirror_exactly(
    front: Proxy, mirror: RecordingServer
) -> None:
    with Client(front.port) as client:
        client.send(b"".join(PIPELINED))
        responses = [client.read(head_request=i == 3) for i in range(len(PIPELINED))]
    assert [r.status for r in responses] == [200] * 5
    assert responses[1].body == b"POST /relay/pipe/2"
    assert responses[4].body == b"GET /relay/pipe/5"
    wait_until(lambda: len(mirrored(mirror, b"/relay/pipe/")) == 5, message="mirror copies")
    assert mirrored(mirror, b"/relay/pipe/") == sorted(PIPELINED)


def test_requests_arriving_in_pieces_are_mirrored_whole(
    front: Proxy, mirror: RecordingServer
) -> None:
    request = (
        b"POST /relay/pieces HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (100, bytes([65 + i]) * 100) for i in range(5))
        + b"0\r\n\r\n"
    )
    with Client(front.port) as client:
        for start in range(0, len(request), 97):
            client.send(request[start : start + 97])
            time.sleep(0.01)  # separate reads on the proxy's side
        assert client.read().status == 200
    wait_until(lambda: mirrored(mirror, b"/relay/pieces") == [request], message="streamed copy")


def test_expect_100_continue(front: Proxy, mirror: RecordingServer) -> None:
    body = b"x" * 10_000
    with Client(front.port) as client:
        client.send(
            b"PUT /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        assert client.read().status == 100
        client.send(body)
        response = client.read()
    assert response.body == b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())
    wait_until(lambda: any(r.body == body for r in mirror.snapshot()), message="mirrored PUT")


def test_client_half_close_still_gets_its_response(front: Proxy) -> None:
    with Client(front.port) as client:
        client.send(b"GET /relay/half HTTP/1.1\r\nHost: a\r\n\r\n")
        client.sock.shutdown(socket.SHUT_WR)
        assert client.read().body == b"GET /relay/half"
        assert client.file.read() == b""  # then the proxy closes


def test_app_close_flushes_pending_bytes_then_closes(front: Proxy) -> None:
    with Client(front.port) as client:
        response = client.request("GET", "/close")
        assert (response.status, response.header(b"connection")) == (200, b"close")
        assert client.file.read() == b""


def test_head_and_keep_alive_sequence(front: Proxy) -> None:
    with Client(front.port) as client:
        for i in range(20):
            method = "HEAD" if i % 3 == 0 else "GET"
            response = client.request(method, f"/relay/seq/{i}")
            assert response.status == 200
            assert response.body == (b"" if method == "HEAD" else f"GET /relay/seq/{i}".encode())


def test_websocket_upgrade_echo_keeps_working_and_frames_are_not_mirrored(
    front: Proxy, mirror: RecordingServer
) -> None:
    with Client(front.port) as client:
        client.send(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert client.read().status == 101
        for frame in (b"\x81\x05hello", b"GET /not/a/request HTTP/1.1\r\n\r\n", b"\x88\x00"):
            client.send(frame)
            assert client.file.read(len(frame)) == frame
    wait_until(lambda: any(r.target == b"/ws" for r in mirror.snapshot()), message="handshake")
    time.sleep(0.3)
    assert not any(r.target == b"/not/a/request" for r in mirror.snapshot())


def test_a_declined_upgrade_keeps_the_connection_mirrored(
    front: Proxy, mirror: RecordingServer
) -> None:
    with Client(front.port) as client:
        response = client.request(
            "GET", "/relay/declined", headers="Connection: Upgrade\r\nUpgrade: h2c\r\n"
        )
        assert response.status == 200
        assert client.request("GET", "/relay/after-declined").status == 200
    wait_until(
        lambda: len(mirrored(mirror, b"/relay/after-declined")) == 1, message="mirror resumed"
    )


def test_downloads_and_uploads_on_many_connections(front: Proxy) -> None:
    body = bytes(range(256)) * 1000
    digest = hashlib.sha256(body).hexdigest().encode()
    clients = [Client(front.port) for _ in range(8)]
    try:
        for round_ in range(5):
            for client in clients:
                client.send(
                    b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
                    + body
                )
            for client in clients:
                assert client.read().body == b"%d %s" % (len(body), digest), round_
    finally:
        for client in clients:
            client.close()


def test_bytes_that_are_not_http_are_relayed_faithfully_and_not_mirrored(
    tmp_path: Path, core: str
) -> None:
    valid = b"GET /before/junk HTTP/1.1\r\nHost: a\r\n\r\n"
    junk = bytes(range(256)) * 40 + b"\r\n\r\n"
    connect = b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n"
    with (
        EchoServer() as echo,
        RecordingServer() as mirror,
        proxy(tmp_path, echo.port, f"127.0.0.1:{mirror.port}", core=core) as front,
    ):
        for stream in (valid + junk, connect + b"\x00tunnel bytes\xff" * 100):
            with Client(front.port) as client:
                client.send(stream)
                assert client.file.read(len(stream)) == stream
        # The proxy is still healthy.
        with Client(front.port) as client:
            client.send(valid)
            assert client.file.read(len(valid)) == valid
        wait_until(lambda: mirror.count() == 2, message="only the valid requests")
        time.sleep(0.3)
        assert [r.target for r in mirror.snapshot()] == [b"/before/junk"] * 2
    assert "unframed=2" in front.log()
