"""MirrorTarget's drop policy, driven directly against real local listeners.

Each test runs its own event loop; targets are sockets on 127.0.0.1 that read
everything, never read, or do not exist.
"""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Awaitable, Callable

from tests.proxy.servers import Sink
from tests.support import RecordingServer, free_port
from traffic_duplicator.addr import Address
from traffic_duplicator.gorproto import SEPARATOR, StreamSplitter, decode
from traffic_duplicator.logs import EventLog, RateLimitedLog
from traffic_duplicator.proxy.config import MirrorConfig, TargetKind, TargetSpec
from traffic_duplicator.proxy.connection import LINGER_BYTES
from traffic_duplicator.proxy.mirror import MirrorTarget

REQUEST = b"GET /t HTTP/1.1\r\nHost: a\r\n\r\n"


def make_target(
    port: int, kind: TargetKind = TargetKind.HTTP, buffer_bytes: int = 64 * 1024
) -> tuple[MirrorTarget, io.StringIO]:
    stream = io.StringIO()
    log = EventLog(None, stream)
    target = MirrorTarget(
        TargetSpec(Address("127.0.0.1", port), kind),
        MirrorConfig(buffer_bytes=buffer_bytes, connections=2),
        host="127.0.0.1",
        errors=RateLimitedLog(log, 5.0),
        log=log,
    )
    return target, stream


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


async def until(
    predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(10**7):
        if predicate():
            return
        assert loop.time() < deadline, "condition not met"
        await asyncio.sleep(interval)


def test_whole_requests_drop_once_a_stalled_target_holds_its_cap() -> None:
    async def scenario() -> None:
        with RecordingServer(read=False) as stalled:
            target, log = make_target(stalled.port)
            body = b"x" * 20_000
            request = b"POST /p HTTP/1.1\r\nContent-Length: 20000\r\n\r\n" + body
            for _ in range(2000):  # 40 MB: more than any kernel buffers
                target.send(request, close=False)
                await asyncio.sleep(0)  # let the loop flush and connect
                assert target.behind() <= 64 * 1024 + len(request)
            counters = target.counters
            assert counters.dropped > 0
            assert counters.mirrored + counters.dropped + counters.failed == 2000
            assert log.getvalue().count("at=mirror_drop") == 1  # rate limited
            target.close()

    run(scenario)


def test_answered_copies_leave_the_raw_targets_cap() -> None:
    async def scenario() -> None:
        with RecordingServer() as mirror:
            target, _ = make_target(mirror.port)
            body = b"a" * 1000
            request = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + body

            def settled(count: int) -> Callable[[], bool]:
                return lambda: mirror.count() == count and target.unanswered == 0

            for batch in range(1, 11):  # 200 KB in all, three times the cap: answers free it
                for _ in range(20):
                    target.send(request, close=False)
                await until(settled(20 * batch))
            # A stream larger than the cap: counted by what the target has not read.
            head = b"PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: 400000\r\n\r\n"
            conn = target.begin(head, close=False)
            assert conn is not None
            for _ in range(20):
                target.stream(conn, b"y" * 20_000)
                await until(lambda: target.buffered() == 0, interval=0)
            target.end(conn)
            assert target.unanswered > 0  # not answered yet: in flight
            await until(settled(201))
            counters = target.counters
            assert (counters.mirrored, counters.dropped, counters.failed) == (201, 0, 0)
            target.close()

    run(scenario)


def test_unanswered_copies_hold_the_cap_across_retired_connections() -> None:
    async def scenario() -> None:
        with RecordingServer(read=False) as stalled:
            target, _ = make_target(stalled.port)
            # Connection: close retires a connection per request; the kernel would take
            # all of these copies, the cap only its share, and no connection beyond it.
            pad = b"X-Pad: " + b"x" * 900 + b"\r\n"
            request = b"GET /c HTTP/1.1\r\nHost: a\r\n" + pad + b"Connection: close\r\n\r\n"
            for _ in range(300):
                target.send(request, close=True)
                await asyncio.sleep(0)
            assert target.behind() <= 64 * 1024 + len(request)
            await asyncio.sleep(0.2)
            assert len(target._live) <= 64 * 1024 // len(request) + 1
            assert target.counters.dropped > 0
            target.close()

    run(scenario)


def test_a_refusing_target_fails_fast_and_is_retried_with_backoff() -> None:
    async def scenario() -> None:
        port = free_port()
        target, log = make_target(port)
        target.send(REQUEST, close=False)
        await until(lambda: target.counters.failed == 1)
        attempts = 0
        for _ in range(50):  # requests while down fail at once, without new attempts
            before = len(target._live)
            target.send(REQUEST, close=False)
            attempts += len(target._live) - before
        assert target.counters.failed == 51 - attempts
        assert attempts <= 1
        with RecordingServer(port=port) as back:
            # How soon it resumes is pinned in fake time by the transcript tests
            # (test_mirror_transcripts.py); here the real target just has to get a copy.
            def resumed() -> bool:
                target.send(REQUEST, close=False)
                return back.count() > 0

            await until(resumed, timeout=15.0, interval=0.02)
        assert "at=mirror_error" in log.getvalue()
        assert "at=mirror_up" in log.getvalue()
        target.close()

    run(scenario)


def test_a_stream_larger_than_the_cap_reaches_a_target_that_keeps_up() -> None:
    async def scenario() -> None:
        with Sink() as sink:
            target, _ = make_target(sink.port, TargetKind.GOR, buffer_bytes=64 * 1024)
            head = b"PUT /big HTTP/1.1\r\nContent-Length: 4000000\r\n\r\n"
            conn = target.begin(head, close=False)
            assert conn is not None
            piece = b"y" * 40_000
            for _ in range(100):
                target.stream(conn, piece)
                # Like a client's reads: the target drains between them.
                await until(lambda: target.buffered() == 0, interval=0)
            target.end(conn)
            await until(lambda: b"".join(sink.streams()).endswith(SEPARATOR))
            frames = StreamSplitter(max_frame=8 << 20).feed(b"".join(sink.streams()))
            assert [decode(frame).payload for frame in frames] == [head + piece * 100]
            assert (target.counters.mirrored, target.counters.dropped) == (1, 0)
            target.close()

    run(scenario)


def test_a_stream_that_falls_behind_is_reset_and_counted() -> None:
    async def scenario() -> None:
        with RecordingServer(read=False) as stalled:
            target, _ = make_target(stalled.port)
            conn = target.begin(b"PUT /big HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", False)
            assert conn is not None
            for _ in range(3000):
                target.stream(conn, b"z" * 10_000)
                await asyncio.sleep(0)
                if conn.dead:
                    break
            assert conn.dead
            assert target.counters.dropped == 1
            assert target.buffered() == 0  # its bytes were let go
            # The next request does not open a connection at once.
            assert target.begin(b"PUT /next HTTP/1.1\r\nContent-Length: 5\r\n\r\n", False) is None
            target.close()

    run(scenario)


def test_connection_close_retires_a_raw_connection_and_the_copy_is_exact() -> None:
    async def scenario() -> None:
        with RecordingServer() as mirror:
            target, _ = make_target(mirror.port)
            closing = b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            target.send(closing, close=True)
            assert target._conns == []  # no further request may follow it there
            target.send(REQUEST, close=False)
            await until(lambda: mirror.count() == 2)
            assert sorted(r.raw for r in mirror.snapshot()) == sorted([closing, REQUEST])
            target.close()

    run(scenario)


def test_gor_payloads_holding_the_separator_are_dropped_not_framed() -> None:
    async def scenario() -> None:
        with Sink() as sink:
            target, _ = make_target(sink.port, TargetKind.GOR)
            forged = b"POST /x HTTP/1.1\r\nContent-Length: 14\r\n\r\n" + SEPARATOR
            target.send(forged, close=False)
            conn = target.begin(b"POST /y HTTP/1.1\r\nContent-Length: 20\r\n\r\nabc\n", False)
            assert conn is not None
            target.stream(conn, SEPARATOR[1:] + b"tail")  # split across two reads
            target.send(REQUEST, close=False)
            await until(lambda: sink.total() > 0 and target.buffered() == 0)
            await asyncio.sleep(0.1)
            frames = b"".join(sink.streams()).split(SEPARATOR)
            assert [decode(frame).payload for frame in frames[:-1]] == [REQUEST]
            assert target.counters.dropped == 2
            target.close()

    run(scenario)


def test_close_leaves_no_connection_behind() -> None:
    async def scenario() -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        target, _ = make_target(listener.getsockname()[1])
        target.send(REQUEST, close=False)
        await asyncio.sleep(0.05)
        target.close()
        await asyncio.sleep(0.05)
        assert target.flushed
        listener.close()

    run(scenario)


def test_a_burst_larger_than_the_cap_in_one_iteration_is_not_dropped() -> None:
    async def scenario() -> None:
        with Sink() as sink:
            target, _ = make_target(sink.port, TargetKind.GOR, buffer_bytes=64 * 1024)
            target.send(REQUEST, close=False)
            await until(lambda: target.flushed)  # connected, nothing waiting
            request = b"POST /b HTTP/1.1\r\nContent-Length: 20000\r\n\r\n" + b"b" * 20_000
            for _ in range(100):  # 2 MB from many clients' reads in one loop iteration
                target.send(request, close=False)
            await until(lambda: _frames(sink) == 101)
            assert (target.counters.mirrored, target.counters.dropped) == (101, 0)
            target.close()

    run(scenario)


def test_a_burst_in_one_iteration_to_a_stalled_target_stays_within_its_cap() -> None:
    # uvloop reads a client socket up to 32 times per iteration, and every client before
    # the iteration's callbacks: one iteration can bring many megabytes of copies.
    async def scenario() -> None:
        with RecordingServer(read=False) as stalled:
            cap = 64 * 1024
            target, _ = make_target(stalled.port, TargetKind.GOR, buffer_bytes=cap)
            target.send(REQUEST, close=False)
            await until(lambda: target.flushed)  # connected, nothing waiting
            request = b"POST /b HTTP/1.1\r\nContent-Length: 20000\r\n\r\n" + b"b" * 20_000
            for _ in range(2000):  # 40 MB without yielding: more than any kernel buffers
                target.send(request, close=False)
                assert target.buffered() <= cap + LINGER_BYTES + 2 * len(request)
            counters = target.counters
            assert counters.dropped > 0
            # Copies written to a connection still being opened count once it is up.
            await until(lambda: counters.mirrored + counters.dropped + counters.failed == 2001)
            target.close()

    run(scenario)


def test_a_status_line_split_between_reads_still_answers_its_copy() -> None:
    # A raw target's answers are counted by their "HTTP/1." marker, not parsed: one cut
    # by a read boundary must still release its request from the cap.
    async def scenario() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        loop = asyncio.get_running_loop()
        target, _ = make_target(listener.getsockname()[1], buffer_bytes=64 * 1024)
        request = b"POST /p HTTP/1.1\r\nContent-Length: 20000\r\n\r\n" + b"p" * 20_000
        target.send(request, close=False)
        server, _ = await loop.sock_accept(listener)
        for sent in range(1, 21):  # 400 kB in all, six times the cap, one at a time
            received = b""
            while len(received) < len(request):
                received += await loop.sock_recv(server, 65536)
            await loop.sock_sendall(server, b"HTT")
            await asyncio.sleep(0.01)  # the first piece is read on its own
            await loop.sock_sendall(server, b"P/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await until(lambda: target.behind() == 0)
            if sent < 20:
                target.send(request, close=False)
        assert (target.counters.mirrored, target.counters.dropped) == (20, 0)
        target.close()
        server.close()
        listener.close()

    run(scenario)


def _frames(sink: Sink) -> int:
    return sum(stream.count(SEPARATOR) for stream in sink.streams())
