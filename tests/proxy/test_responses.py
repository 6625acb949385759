"""The response tracker as transcripts: bytes in, complete responses counted."""

from __future__ import annotations

import pytest

from traffic_duplicator.proxy.responses import (
    CHUNKED,
    HEAD,
    LENGTH,
    LOST,
    UNTIL_CLOSE,
    ResponseTracker,
)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED_OK = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n"
)


def feed(tracker: ResponseTracker, *pieces: bytes) -> ResponseTracker:
    for piece in pieces:
        tracker.feed(piece)
    return tracker


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def test_content_length_responses_are_counted_when_complete() -> None:
    tracker = ResponseTracker()
    assert tracker.feed(OK[:-1])  # a head went by
    assert tracker.completed == 0
    assert tracker.in_response
    assert tracker.feed(OK[-1:])
    assert (tracker.completed, tracker.state, tracker.in_response) == (1, HEAD, False)


def test_pipelined_responses_in_one_read() -> None:
    tracker = feed(ResponseTracker(), OK + CHUNKED_OK + OK)
    assert tracker.completed == 3
    assert tracker.finals == 3


@pytest.mark.parametrize("stream", [OK + CHUNKED_OK + OK, CHUNKED_OK * 2])
def test_byte_by_byte_gives_the_same_count(stream: bytes) -> None:
    assert feed(ResponseTracker(), *bytewise(stream)).completed == 3 - (stream.count(b"5\r\n") == 0)


def test_chunked_body_ends_after_trailers() -> None:
    tracker = feed(ResponseTracker(), CHUNKED_OK[:-2])
    assert (tracker.completed, tracker.state) == (0, CHUNKED)
    tracker.feed(CHUNKED_OK[-2:])
    assert tracker.completed == 1


def test_header_names_are_case_insensitive_and_lists_are_read() -> None:
    tracker = feed(
        ResponseTracker(),
        b"HTTP/1.1 200 OK\r\ncontent-LENGTH:  3 \r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: gzip, Chunked\r\n\r\n0\r\n\r\n",
    )
    assert tracker.completed == 3


def test_no_body_for_head_requests_204_304_and_zero_length() -> None:
    tracker = ResponseTracker()
    tracker.expect(0, b"HEAD")
    feed(
        tracker,
        OK[: OK.index(b"\r\n\r\n") + 4],  # HEAD: Content-Length describes a body not sent
        b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    )
    assert (tracker.completed, tracker.in_response) == (4, False)


def test_informational_responses_precede_the_final_one() -> None:
    tracker = ResponseTracker()
    feed(tracker, b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n")
    assert (tracker.completed, tracker.finals) == (0, 0)
    tracker.feed(OK)
    assert (tracker.completed, tracker.finals) == (1, 1)


def test_101_turns_the_connection_into_a_tunnel() -> None:
    tracker = ResponseTracker()
    assert tracker.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05")
    assert tracker.tunnel
    assert not tracker.feed(OK)  # frames are not read as responses
    assert tracker.completed == 0


def test_a_body_without_length_runs_until_close() -> None:
    tracker = feed(ResponseTracker(), b"HTTP/1.0 200 OK\r\n\r\nstreaming")
    assert tracker.state == UNTIL_CLOSE
    assert tracker.in_response
    tracker = feed(ResponseTracker(), b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nx")
    assert tracker.state == UNTIL_CLOSE


@pytest.mark.parametrize(
    "junk",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_unreadable_responses_lose_track_for_good(junk: bytes) -> None:
    tracker = ResponseTracker()
    assert tracker.feed(junk)
    assert tracker.state == LOST
    assert not tracker.feed(OK)
    assert tracker.in_response  # never idle again: the relay waits for a close


def test_large_bodies_are_counted_down_without_parsing() -> None:
    tracker = feed(ResponseTracker(), b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n")
    assert tracker.state == LENGTH
    for _ in range(29):
        assert not tracker.feed(b"x" * 100_000)
    assert tracker.feed(b"x" * 100_000 + OK)
    assert tracker.completed == 2


def test_head_split_across_reads_at_every_point() -> None:
    for cut in range(1, len(OK)):
        tracker = feed(ResponseTracker(), OK[:cut], OK[cut:] + OK)
        assert tracker.completed == 2, cut
