"""Mirror targets end to end: resuming after a restart, pooling, and gor framing."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.proxy.servers import AppServer, Client, Sink, proxy
from tests.support import RecordingServer, free_port, wait_until
from traffic_duplicator.gorproto import SEPARATOR, StreamSplitter, decode

# A generous cap on the wait, not a measure of it: how soon a target that comes back is
# mirrored again (one capped backoff delay) is pinned in fake time by
# test_mirror_transcripts.py. em-proxy never resumes.
RESUME_CAP = 20.0


def test_mirroring_resumes_on_an_open_keep_alive_connection_after_the_target_restarts(
    tmp_path: Path,
) -> None:
    mirror_port = free_port()
    with (
        AppServer() as app,
        proxy(tmp_path, app.port, f"127.0.0.1:{mirror_port}") as front,
        Client(front.port) as client,
    ):
        mirror = RecordingServer(port=mirror_port).start()
        try:
            assert client.request("GET", "/before").status == 200
            wait_until(lambda: mirror.count() == 1, message="first copy")
        finally:
            mirror.stop()
        for i in range(10):  # the target is down: primary requests carry on
            assert client.request("GET", f"/down/{i}").status == 200
            time.sleep(0.05)
        with RecordingServer(port=mirror_port) as restarted:

            def resumed() -> bool:
                assert client.request("GET", "/after").status == 200
                return restarted.count() > 0

            wait_until(resumed, timeout=RESUME_CAP, message="mirroring never resumed")
            assert all(r.target == b"/after" for r in restarted.snapshot())
    assert "at=mirror_error" in front.log()


def test_connection_close_clients_share_a_few_gor_connections(tmp_path: Path) -> None:
    with (
        AppServer() as app,
        Sink() as sink,
        proxy(tmp_path, app.port, f"gor://127.0.0.1:{sink.port}") as front,
    ):
        for i in range(60):
            with Client(front.port) as client:
                response = client.request("GET", f"/close/{i}", headers="Connection: close\r\n")
                assert response.status == 200
        wait_until(lambda: sink.total() > 0 and _frames(sink) == 60, message="60 frames")
        assert sink.accepted <= 4  # the pool, not a connection per client


def test_raw_http_target_gets_connection_close_requests_exactly(tmp_path: Path) -> None:
    with (
        AppServer() as app,
        RecordingServer() as mirror,
        proxy(tmp_path, app.port, f"127.0.0.1:{mirror.port}") as front,
    ):
        sent = []
        for i in range(30):
            raw = f"GET /raw-close/{i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode()
            sent.append(raw)
            with Client(front.port) as client:
                client.send(raw)
                assert client.read().status == 200
        wait_until(lambda: mirror.count() == 30, message="30 copies")
        assert sorted(r.raw for r in mirror.snapshot()) == sorted(sent)


def _frames(sink: Sink) -> int:
    return sum(stream.count(SEPARATOR) for stream in sink.streams())


def test_gor_framing_byte_for_byte(tmp_path: Path) -> None:
    requests = [
        b"GET /gor/1?q=1 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /gor/2 HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
        b"POST /gor/3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n",
    ]
    streamed = b"PUT /gor/4 HTTP/1.1\r\nHost: a\r\nContent-Length: 300000\r\n\r\n" + (
        b"0123456789" * 30000
    )
    before = time.time_ns()
    with (
        AppServer() as app,
        Sink() as sink,
        proxy(tmp_path, app.port, f"gor://127.0.0.1:{sink.port}") as front,
    ):
        with Client(front.port) as client:
            client.send(b"".join(requests))
            for _ in requests:
                assert client.read().status == 200
            for start in range(0, len(streamed), 100_000):  # arrives in pieces
                client.send(streamed[start : start + 100_000])
                time.sleep(0.05)
            assert client.read().status == 200
        wait_until(lambda: _frames(sink) == 4, message="4 frames")
    after = time.time_ns()
    payloads = []
    for stream in sink.streams():
        assert stream.endswith(SEPARATOR)  # nothing partial is ever sent
        splitter = StreamSplitter()
        for frame in splitter.feed(stream):
            header = frame.split(b"\n", 1)[0]
            assert re.fullmatch(rb"1 [0-9a-f]{24} \d{19} 0", header), header
            message = decode(frame)
            assert before <= message.timestamp_ns <= after
            payloads.append(message.payload)
        assert splitter.finish() is None
    assert sorted(payloads) == sorted([*requests, streamed])
    ids = [
        frame.split(b" ")[1] for stream in sink.streams() for frame in stream.split(SEPARATOR)[:-1]
    ]
    assert len(set(ids)) == 4
