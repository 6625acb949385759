"""The output side's response reader, as transcripts of bytes fed in."""

from __future__ import annotations

import pytest

from traffic_duplicator.replay.response import ResponseError, ResponseParser


def feed(parser: ResponseParser, data: bytes, step: int = 0) -> ResponseParser:
    if step:
        for i in range(0, len(data), step):
            parser.feed(data[i : i + step])
    else:
        parser.feed(data)
    return parser


@pytest.mark.parametrize("step", [0, 1, 7])
def test_content_length(step: int) -> None:
    parser = feed(ResponseParser(), b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello", step)
    assert (parser.done, parser.status, parser.keep_alive) == (True, 201, True)


@pytest.mark.parametrize("step", [0, 1, 5])
def test_chunked_with_trailer(step: int) -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: y\r\n\r\n"
    parser = feed(ResponseParser(), data[:-1], step)
    assert not parser.done
    assert feed(parser, data[-1:]).done
    assert parser.keep_alive


def test_until_close() -> None:
    parser = feed(ResponseParser(), b"HTTP/1.1 200 OK\r\n\r\nsome body")
    assert not parser.done
    parser.eof()
    assert (parser.done, parser.keep_alive) == (True, False)


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int) -> None:
    parser = feed(ResponseParser(), f"HTTP/1.1 {status} X\r\nContent-Length: 9\r\n\r\n".encode())
    assert parser.done and parser.status == status


def test_head_request_has_no_body() -> None:
    parser = feed(
        ResponseParser(head_request=True), b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
    )
    assert parser.done and parser.keep_alive


def test_interim_continue_is_skipped() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    parser = feed(ResponseParser(), data)
    assert parser.done and parser.status == 200


def test_http10_and_connection_close_are_not_reused() -> None:
    assert not feed(ResponseParser(), b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    assert not feed(ResponseParser(), close).keep_alive
    keep = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
    assert feed(ResponseParser(), keep).keep_alive


def test_redirect_location_keeps_its_case() -> None:
    parser = feed(
        ResponseParser(), b"HTTP/1.1 302 Found\r\nLocation: /New?A=1\r\nContent-Length: 0\r\n\r\n"
    )
    assert parser.location == b"/New?A=1"


def test_extra_bytes_make_the_connection_untrusted() -> None:
    parser = feed(ResponseParser(), b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy")
    assert parser.done and not parser.keep_alive


@pytest.mark.parametrize(
    "data",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    ],
)
def test_garbage_is_an_error(data: bytes) -> None:
    with pytest.raises(ResponseError):
        ResponseParser().feed(data)


def test_early_close_is_an_error() -> None:
    parser = feed(ResponseParser(), b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(ResponseError):
        parser.eof()
