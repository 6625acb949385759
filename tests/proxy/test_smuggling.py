"""Ambiguous request framing through a real proxy: relayed byte for byte, never mirrored.

A request whose end a server could place elsewhere may hide a second ("smuggled")
request that production never processed as such. The app must still get every byte;
the mirror must get nothing from that request on, and the stats line says why.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.proxy.servers import AppServer, Client, Sink, proxy
from tests.support import RecordingServer, wait_until

# (reason, the ambiguous request); each is sent after a valid request and before a
# smuggled one, on its own connection.
CASES = [
    (
        "cl_and_te",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    ("te_http10", b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    (
        "te_not_chunked",
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "te_repeated",
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "cl_invalid",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    ),
    ("space_before_colon", b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length : 2\r\n\r\nok"),
    ("obs_fold", b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
    ("bare_cr", b"POST /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\nContent-Length: 2\r\n\r\nok"),
    (
        "chunk_syntax",
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2 ;a b\r\nok\r\n0\r\n\r\n",
    ),
]


def valid(case: str) -> bytes:
    return f"GET /before/{case} HTTP/1.1\r\nHost: a\r\n\r\n".encode()


def smuggled(case: str) -> bytes:
    return f"GET /smuggled/{case} HTTP/1.1\r\nHost: a\r\n\r\n".encode()


def test_ambiguous_requests_reach_the_app_byte_for_byte_and_never_the_mirror(
    tmp_path: Path,
) -> None:
    streams = {case: valid(case) + request + smuggled(case) for case, request in CASES}
    with Sink() as app, RecordingServer() as mirror:
        with proxy(tmp_path, app.port, f"127.0.0.1:{mirror.port}") as front:
            for stream in streams.values():
                with Client(front.port) as client:
                    client.send(stream)
                    wait_until(lambda s=stream: s in app.streams(), message="relayed whole")
            # The valid request before each ambiguous one is mirrored: the connection was
            # mirrored until then. Nothing after it is.
            wait_until(lambda: mirror.count() == len(CASES), message="the valid requests")
            # The proxy is still healthy, and a new connection is mirrored again.
            with Client(front.port) as client:
                client.send(valid("after"))
                wait_until(lambda: valid("after") in app.streams(), message="relayed")
            wait_until(lambda: mirror.count() == len(CASES) + 1, message="mirrored again")
        targets = sorted(r.target for r in mirror.snapshot())
    assert targets == sorted(f"/before/{case}".encode() for case in [*streams, "after"])
    log = front.log()
    final = [line for line in log.splitlines() if line.startswith("at=stats ")]
    assert f"unframed={len(CASES)} " in final[-1]
    for case, _ in CASES:
        assert re.search(rf"\bunframed_{case}=1\b", final[-1]), (case, final[-1])
    # One rate-limited line for the first; the others fall in the same interval.
    unframed_lines = [line for line in log.splitlines() if line.startswith("at=unframed ")]
    assert unframed_lines == [
        "at=unframed reason=cl_and_te "
        'detail="Content-Length together with Transfer-Encoding (RFC 9112 6.1)"'
    ]


def test_a_lenient_app_processes_the_smuggled_request_and_the_mirror_never_sees_it(
    tmp_path: Path,
) -> None:
    """h11, like several servers, lets Transfer-Encoding win: the app answers twice."""
    request = dict(CASES)["cl_and_te"]
    with AppServer() as app, RecordingServer() as mirror:
        with proxy(tmp_path, app.port, f"127.0.0.1:{mirror.port}") as front:
            with Client(front.port) as client:
                client.send(valid("lenient") + request + smuggled("lenient"))
                bodies = [client.read().body for _ in range(3)]
            assert bodies == [b"GET /before/lenient", b"POST /x", b"GET /smuggled/lenient"]
            wait_until(lambda: mirror.count() == 1, message="the valid request")
        assert (b"GET", b"/smuggled/lenient") in app.requests
        assert [r.target for r in mirror.snapshot()] == [b"/before/lenient"]
    assert "unframed_cl_and_te=1" in front.log()


@pytest.mark.parametrize("split", [1, 7])
def test_ambiguity_found_across_reads_still_stops_mirroring(tmp_path: Path, split: int) -> None:
    """The client sends in small pieces: the framer decides on a head split across reads."""
    case, request = CASES[0]
    stream = valid(case) + request + smuggled(case)
    with Sink() as app, RecordingServer() as mirror:
        with proxy(tmp_path, app.port, f"127.0.0.1:{mirror.port}") as front:
            with Client(front.port) as client:
                for i in range(0, len(stream), split):
                    client.send(stream[i : i + split])
                wait_until(lambda: stream in app.streams(), message="relayed whole")
            wait_until(lambda: mirror.count() == 1, message="the valid request")
        assert [r.target for r in mirror.snapshot()] == [f"/before/{case}".encode()]
    assert "unframed_cl_and_te=1" in front.log()
