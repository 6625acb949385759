"""Where a response ends (RFC 9112 section 6.3): the shared rule, and both of its readers.

The proxy's ResponseTracker and the replayer's ResponseParser both apply `response_end`;
each case below is checked on the function and on both readers, and the whole is checked
against h11 on generated exchanges.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traffic_duplicator.http1 import FramingError
from traffic_duplicator.http1.response import (
    CHUNKED,
    INTERIM,
    LENGTH,
    NO_BODY,
    TUNNEL,
    UNTIL_CLOSE,
    response_end,
)
from traffic_duplicator.proxy.responses import ResponseTracker
from traffic_duplicator.replay.response import ResponseError, ResponseParser


def head(status_line: str, *fields: str) -> bytes:
    return ("\r\n".join([status_line, *fields]) + "\r\n\r\n").encode()


OK = "HTTP/1.1 200 OK"

# (request method, response head, what follows it, length): RFC 9112 section 6.3 in order.
CASES = [
    # item 1: HEAD, 1xx, 204, 304 end with the head
    ("HEAD", head("HTTP/1.1 200 OK", "Content-Length: 99"), NO_BODY, 0),
    ("HEAD", head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"), NO_BODY, 0),
    ("GET", head("HTTP/1.1 100 Continue"), INTERIM, 0),
    ("GET", head("HTTP/1.1 103 Early Hints", "Link: </a.css>; rel=preload"), INTERIM, 0),
    ("GET", head("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket"), TUNNEL, 0),
    ("GET", head("HTTP/1.1 204 No Content", "Content-Length: 9"), NO_BODY, 0),
    ("GET", head("HTTP/1.1 304 Not Modified", "Transfer-Encoding: chunked"), NO_BODY, 0),
    # item 2: a 2xx to CONNECT is a tunnel; any other answer is an ordinary response
    ("CONNECT", head("HTTP/1.1 200 Connection Established", "Content-Length: 5"), TUNNEL, 0),
    ("CONNECT", head("HTTP/1.1 407 Proxy Auth", "Content-Length: 5"), LENGTH, 5),
    # items 3-4: Transfer-Encoding wins; chunked only when it is the final coding
    ("GET", head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Content-Length: 9"), CHUNKED, 0),
    ("GET", head("HTTP/1.1 200 OK", "transfer-encoding: gzip, CHUNKED"), CHUNKED, 0),
    ("GET", head(OK, "Transfer-Encoding: gzip", "Transfer-Encoding: chunked"), CHUNKED, 0),
    ("GET", head(OK, "Transfer-Encoding: gzip", "Content-Length: 4"), UNTIL_CLOSE, 0),
    ("GET", head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked, gzip"), UNTIL_CLOSE, 0),
    ("GET", head("HTTP/1.1 200 OK", "Transfer-Encoding: xchunked"), UNTIL_CLOSE, 0),
    ("GET", head("HTTP/1.0 200 OK", "Transfer-Encoding: chunked"), UNTIL_CLOSE, 0),
    # item 5: Content-Length, a list of one same value included
    ("GET", head("HTTP/1.1 200 OK", "Content-Length: 12"), LENGTH, 12),
    ("GET", head("HTTP/1.1 200 OK", "Content-Length: 12, 12"), LENGTH, 12),
    ("GET", head("HTTP/1.1 200 OK", "Content-Length: 3", "content-length:  3 "), LENGTH, 3),
    ("GET", head("HTTP/1.1 200 OK", "Content-Length: 0"), NO_BODY, 0),
    ("GET", head("HTTP/1.1 404 Not Found", "X-Content-Length: 7"), UNTIL_CLOSE, 0),
    # item 8: otherwise, until the server closes
    ("GET", head("HTTP/1.1 200 OK"), UNTIL_CLOSE, 0),
    ("GET", head("HTTP/1.0 200 OK"), UNTIL_CLOSE, 0),
    ("GET", head("HTTP/1.1 200"), UNTIL_CLOSE, 0),
]


@pytest.mark.parametrize(("method", "raw", "follows", "length"), CASES)
def test_response_end_follows_rfc_9112_section_6_3(
    method: str, raw: bytes, follows: int, length: int
) -> None:
    assert response_end(raw, method.encode())[1:] == (follows, length)


@pytest.mark.parametrize(
    "raw",
    [
        head("HTTP/1.1 200 OK", "Content-Length: 1", "Content-Length: 2"),
        head("HTTP/1.1 200 OK", "Content-Length: 1, 2"),
        head("HTTP/1.1 200 OK", "Content-Length: -1"),
        head("HTTP/1.1 200 OK", "Content-Length: 1" + "0" * 19),
        head("HTTP/1.1 2000 OK"),
        head("HTTP/1.1 20 OK"),
        head("HTTP/1.1 099 Too Low"),
        head("HTTP/2 200 OK"),
        head("SSH-2.0-OpenSSH"),
    ],
)
def test_unreadable_heads_are_errors(raw: bytes) -> None:
    with pytest.raises(FramingError):
        response_end(raw)


def body_for(follows: int, length: int) -> bytes:
    if follows == LENGTH:
        return b"x" * length
    if follows == CHUNKED:
        return b"3;ext=1\r\nabc\r\n0\r\nTrailer: t\r\n\r\n"
    return b""


@pytest.mark.parametrize(("method", "raw", "follows", "length"), CASES)
def test_tracker_and_parser_agree_with_the_rule(
    method: str, raw: bytes, follows: int, length: int
) -> None:
    """Each reader ends the response where the rule says, byte by byte too."""
    message = raw + body_for(follows, length)
    for step in (len(message), 1):
        tracker = ResponseTracker()
        tracker.expect(0, method.encode())
        parser = ResponseParser(method=method.encode())
        for i in range(0, len(message), step):
            tracker.feed(message[i : i + step])
            if not parser.done:
                parser.feed(message[i : i + step])
        if follows == INTERIM:
            assert (tracker.completed, tracker.finals, parser.done) == (0, 0, False)
        elif follows == TUNNEL:
            assert tracker.tunnel
            assert parser.done and not parser.keep_alive
        elif follows == UNTIL_CLOSE:
            assert tracker.in_response and tracker.completed == 0
            assert not parser.done
            parser.eof()
            assert (parser.done, parser.keep_alive) == (True, False)
        else:
            assert (tracker.completed, tracker.in_response) == (1, False)
            assert parser.done


@pytest.mark.parametrize(
    "raw",
    [
        head("HTTP/1.1 200 OK", "Content-Length: 1", "Content-Length: 2"),
        head("HTTP/1.1 20 OK"),
    ],
)
def test_both_readers_refuse_what_the_rule_refuses(raw: bytes) -> None:
    tracker = ResponseTracker()
    tracker.feed(raw)
    assert tracker.in_response and tracker.completed == 0  # lost: never idle again
    with pytest.raises(ResponseError):
        ResponseParser().feed(raw)


def test_the_response_to_a_pipelined_head_request_is_found_by_its_index() -> None:
    tracker = ResponseTracker()
    tracker.expect(1, b"HEAD")
    tracker.feed(b"HTTP/1.1 100 Continue\r\n\r\n" + head("HTTP/1.1 200 OK", "Content-Length: 2"))
    tracker.feed(b"ok" + head("HTTP/1.1 200 OK", "Content-Length: 50"))
    assert (tracker.completed, tracker.in_response) == (2, False)
    tracker.feed(head("HTTP/1.1 200 OK", "Content-Length: 1") + b"x")
    assert (tracker.completed, tracker.in_response) == (3, False)


# --- differential test against h11, as a client, on generated exchanges -------------------

TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
FRAMING = {"content-length", "transfer-encoding", "connection", "upgrade"}
names = st.text(TOKEN, min_size=1, max_size=10).filter(lambda n: n.lower() not in FRAMING)
field_values = st.text("abcdefghijklmnopqrstuvwxyz0123456789 ;=,/", min_size=0, max_size=20).map(
    str.strip
)
noise = st.lists(st.tuples(names, field_values), max_size=3)
cases = st.sampled_from(["Content-Length", "content-length", "CONTENT-LENGTH"])
ows = st.sampled_from(["", " ", "  ", "\t"])


@dataclass
class Exchange:
    method: bytes
    request_headers: list[tuple[str, str]]
    response: bytes  # interim responses, the final head and its body
    ends: str  # "message", "close" or "tunnel"
    finals: int = 1


def serialise(status_line: str, fields: list[tuple[str, str]]) -> bytes:
    return head(status_line, *(f"{name}:{value}" for name, value in fields))


@st.composite
def chunked_body(draw: st.DrawFn) -> bytes:
    chunks = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=4))
    ext = st.sampled_from(["", ";a", ";a=b", ';q="x y"', ";k=v;w"])
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(c), draw(ext).encode(), c) for c in chunks)
    trailers = draw(noise)
    return out + b"0\r\n" + b"".join(f"{n}: {v}\r\n".encode() for n, v in trailers) + b"\r\n"


STATUSES = st.sampled_from(["200 OK", "201 Created", "404 Not Found", "500 Oops"])
INTERIMS = st.sampled_from(
    [head("HTTP/1.1 100 Continue"), head("HTTP/1.1 103 Early Hints", "Link: </s.css>")]
)
Fields = list[tuple[str, str]]


def with_length(draw: st.DrawFn, fields: Fields) -> Exchange:
    body = draw(st.binary(max_size=60))
    fields.append((draw(cases), draw(ows) + str(len(body)) + draw(ows)))
    message = serialise(f"HTTP/1.1 {draw(STATUSES)}", fields) + body
    return Exchange(b"GET", [], message, "message")


def refused_connect(draw: st.DrawFn, fields: Fields) -> Exchange:
    """A CONNECT answered 407: an ordinary response, and the connection stays HTTP."""
    body = draw(st.binary(max_size=60))
    fields.append(("Content-Length", str(len(body))))
    message = serialise("HTTP/1.1 407 Proxy Authentication Required", fields) + body
    return Exchange(b"CONNECT", [], message, "message")


def chunked(draw: st.DrawFn, fields: Fields) -> Exchange:
    fields.append(("Transfer-Encoding", draw(ows) + "chunked"))
    message = serialise(f"HTTP/1.1 {draw(STATUSES)}", fields) + draw(chunked_body())
    return Exchange(b"GET", [], message, "message")


def to_head(draw: st.DrawFn, fields: Fields) -> Exchange:
    fields.append((draw(cases), str(draw(st.integers(0, 10**6)))))
    return Exchange(b"HEAD", [], serialise(OK, fields), "message")


def without_body(draw: st.DrawFn, fields: Fields) -> Exchange:
    status = draw(st.sampled_from(["204 No Content", "304 Not Modified"]))
    if draw(st.booleans()):
        fields.append(("Content-Length", "12"))
    return Exchange(b"GET", [], serialise(f"HTTP/1.1 {status}", fields), "message")


def until_close(draw: st.DrawFn, fields: Fields) -> Exchange:
    version = draw(st.sampled_from(["HTTP/1.0", "HTTP/1.1"]))
    message = serialise(f"{version} {draw(STATUSES)}", fields) + draw(st.binary(max_size=60))
    return Exchange(b"GET", [], message, "close")


def upgrade(draw: st.DrawFn, fields: Fields) -> Exchange:
    fields += [("Upgrade", "websocket"), ("Connection", "Upgrade")]
    message = serialise("HTTP/1.1 101 Switching Protocols", fields) + draw(st.binary(max_size=30))
    request_headers = [("Connection", "Upgrade"), ("Upgrade", "websocket")]
    return Exchange(b"GET", request_headers, message, "tunnel", 0)


def connect(draw: st.DrawFn, fields: Fields) -> Exchange:
    fields.append(("Content-Length", str(draw(st.integers(0, 99)))))  # ignored after a 2xx
    message = serialise("HTTP/1.1 200 Connection Established", fields)
    return Exchange(b"CONNECT", [], message + draw(st.binary(max_size=30)), "tunnel")


KEEP_ALIVE = [with_length, refused_connect, chunked, to_head, without_body]
LAST_ONLY = [until_close, upgrade, connect]  # the connection is not HTTP/1.1 after these


@st.composite
def exchange(draw: st.DrawFn, last: bool) -> Exchange:
    build = draw(st.sampled_from(KEEP_ALIVE + (LAST_ONLY if last else [])))
    built = build(draw, draw(noise))
    interim = b"".join(draw(st.lists(INTERIMS, max_size=2)))
    built.request_headers = [("Host", "example"), *built.request_headers]
    built.response = interim + built.response
    return built


@st.composite
def conversations(draw: st.DrawFn) -> list[Exchange]:
    count = draw(st.integers(1, 4))
    return [draw(exchange(last=i == count - 1)) for i in range(count)]


def h11_reads(conversation: list[Exchange]) -> list[tuple[int, int]]:
    """For each exchange, (status, bytes of it h11 reads as the response); h11 is a client."""
    conn = h11.Connection(h11.CLIENT)
    out = []
    for exchange_ in conversation:
        target = b"example.com:443" if exchange_.method == b"CONNECT" else b"/"
        conn.send(
            h11.Request(method=exchange_.method, target=target, headers=exchange_.request_headers)
        )
        conn.send(h11.EndOfMessage())
        conn.receive_data(exchange_.response)
        status, ended = 0, False
        while not ended:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                assert exchange_.ends == "close", exchange_
                conn.receive_data(b"")
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                status = 101
            ended = isinstance(event, h11.EndOfMessage) or event is h11.PAUSED
        leftover = len(conn.trailing_data[0])
        out.append((status, len(exchange_.response) - leftover))
        if exchange_.ends == "message":
            conn.start_next_cycle()
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), st.data())
def test_readers_agree_with_h11_on_generated_exchanges(
    conversation: list[Exchange], data: st.DataObject
) -> None:
    reference = h11_reads(conversation)
    stream = b"".join(e.response for e in conversation)
    # The tracker reads the whole conversation, cut anywhere; at each exchange's end it
    # has counted every final response so far.
    tracker = ResponseTracker()
    for index, exchange_ in enumerate(conversation):
        if exchange_.method != b"GET":
            tracker.expect(index, exchange_.method)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    bounds = []
    offset = 0
    for (_, read), exchange_ in zip(reference, conversation):
        bounds.append(offset + read)
        offset += len(exchange_.response)
    points = sorted({0, len(stream), *cuts, *bounds})
    completed_at = {}
    for a, b in itertools.pairwise(points):
        tracker.feed(stream[a:b])
        completed_at[b] = (tracker.completed, tracker.in_response, tracker.tunnel)
    for index, (bound, exchange_) in enumerate(zip(bounds, conversation)):
        if exchange_.ends == "message":
            assert completed_at[bound] == (index + 1, False, False)
        elif exchange_.ends == "tunnel":
            assert completed_at[bound][2]
        else:
            assert completed_at[len(stream)][1]  # until close: still in the response
    # The parser reads one exchange at a time, in pieces, and stops where h11 stopped.
    for (status, read), exchange_ in zip(reference, conversation):
        parser = ResponseParser(method=exchange_.method)
        step = data.draw(st.integers(1, 50))
        for i in range(0, read, step):
            assert not parser.done
            parser.feed(exchange_.response[i : min(i + step, read)])
        if exchange_.ends == "close":
            assert not parser.done
            parser.eof()
        assert parser.done
        assert parser.status == status
