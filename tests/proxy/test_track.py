"""Comparison on, as transcripts: a connection's tap and tracker over fake-loop targets.

The test plays the client (bytes into the tap), the app (bytes into the tracker, as the
relay feeds it after writing them to the client) and the network (`Transcript`), then
reads back the GoReplay messages the gor:// target's connection carried.
"""

from __future__ import annotations

import hashlib
from typing import cast

from tests.proxy.test_tap import GET, POST, UPGRADE
from tests.proxy.test_tap import HEAD_REQUEST as HEAD
from tests.proxy.transcript import FakeTransport, Transcript
from traffic_duplicator import gorproto
from traffic_duplicator.compare import decode_response
from traffic_duplicator.http1 import RequestFramer
from traffic_duplicator.proxy.counters import RelayCounters, stats_lines
from traffic_duplicator.proxy.mirror import MirrorTarget
from traffic_duplicator.proxy.track import Comparison, TrackedTarget

CONNECT = b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class Wire:
    """One client connection with comparison on, a gor:// target and, if asked, a raw one."""

    def __init__(self, body_limit: int = 1024, raw: bool = False, buffer_bytes: int = 65536):
        self.gor = Transcript(gor=True, target_class=TrackedTarget, buffer_bytes=buffer_bytes)
        self.raw = Transcript() if raw else None
        targets: tuple[MirrorTarget, ...] = (self.gor.target,)
        if self.raw is not None:
            targets += (self.raw.target,)
        self.now = 0
        self.counters = RelayCounters()
        self.comparison = Comparison(
            targets, body_limit, self.counters, None, clock=lambda: self.now
        )
        self.tracker, self.tap = self.comparison.connection(RequestFramer())
        self._connected = 0

    @property
    def target(self) -> TrackedTarget:
        return cast(TrackedTarget, self.gor.target)

    def client(self, data: bytes) -> bool:
        alive = self.tap.feed(data)
        self._iterate()
        return alive

    def app(self, data: bytes, after_ns: int = 0) -> None:
        self.now += after_ns
        self.tracker.feed(data)
        self._iterate()

    def _iterate(self) -> None:
        for transcript in (self.gor, self.raw):
            if transcript is None:
                continue
            transcript.iteration()
            for number in range(1, len(transcript.conns) + 1):
                if transcript.conn(number).transport is None and not transcript.conn(number).dead:
                    transcript.connect(number)

    def messages(self, number: int = 1) -> list[gorproto.Message]:
        """Every GoReplay message the gor:// target's connection `number` carried."""
        transport = cast(FakeTransport, self.gor.conn(number).transport)
        splitter = gorproto.StreamSplitter()
        return [gorproto.decode(frame) for frame in splitter.feed(bytes(transport.sent))]

    def kinds(self, number: int = 1) -> list[tuple[bytes, bytes]]:
        """(type, id) of each message, ids replaced by their order of appearance."""
        names: dict[bytes, bytes] = {}
        return [
            (m.kind, names.setdefault(m.message_id, b"#%d" % (len(names) + 1)))
            for m in self.messages(number)
        ]

    def counts(self) -> tuple[int, int]:
        compare = self.target.compare
        return compare.sent, compare.dropped


def test_a_request_then_its_response_with_one_id_and_the_latency() -> None:
    wire = Wire()
    wire.client(GET)
    wire.app(OK, after_ns=12_345_678)
    request, original = wire.messages()
    assert (request.kind, original.kind) == (gorproto.REQUEST, gorproto.RESPONSE)
    assert request.message_id == original.message_id
    assert len(request.message_id) == gorproto.ID_HEX_CHARS
    assert request.payload == GET
    assert original.payload == OK
    assert original.latency == 12_345_678
    response = decode_response(original)
    assert (response.status, response.body, response.latency) == (200, b"ok", 0.012345678)
    assert wire.counts() == (1, 0)


def test_pipelined_requests_and_responses_keep_their_pairs_in_order() -> None:
    wire = Wire()
    wire.client(GET + POST + GET)
    wire.app(ok(b"1") + ok(b"2"))
    wire.app(ok(b"3"))
    messages = wire.messages()
    ids = [b"#1", b"#2", b"#3"]  # three type 1, then three type 2 with the same ids
    assert wire.kinds() == [(b"1", n) for n in ids] + [(b"2", n) for n in ids]
    assert [decode_response(m).body for m in messages[3:]] == [b"1", b"2", b"3"]


def test_head_interim_and_bodiless_statuses_frame_the_next_response_right() -> None:
    wire = Wire()
    wire.client(HEAD + GET + GET)
    wire.app(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")  # HEAD: no body follows
    wire.app(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n")
    wire.app(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n")
    wire.app(b"HTTP/1.1 204 No Content\r\n\r\n")
    originals = [decode_response(m) for m in wire.messages() if m.kind == gorproto.RESPONSE]
    assert [(r.status, r.body_length) for r in originals] == [(200, 0), (304, 0), (204, 0)]
    assert wire.kinds()[3:] == [(b"2", b"#1"), (b"2", b"#2"), (b"2", b"#3")]


def test_a_streamed_upload_gets_its_response_after_its_end() -> None:
    wire = Wire()
    wire.client(POST[:-2])
    wire.app(b"HTTP/1.1 100 Continue\r\n\r\n")
    wire.client(POST[-2:])
    wire.app(OK, after_ns=50)
    (request, original) = wire.messages()
    assert request.payload == POST
    assert (original.message_id, original.latency) == (request.message_id, 50)


def test_a_response_before_the_request_ends_is_dropped_never_sent_first() -> None:
    wire = Wire()
    wire.client(POST[:-2])
    wire.app(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
    wire.client(POST[-2:])
    assert wire.kinds() == [(b"1", b"#1")]
    assert wire.counts() == (0, 1)


def test_a_connection_closed_mid_response_sends_nothing() -> None:
    wire = Wire()
    wire.client(GET + GET)
    wire.app(OK + b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
    wire.tracker.app_eof()
    wire.app(b"")
    assert wire.kinds() == [(b"1", b"#1"), (b"1", b"#2"), (b"2", b"#1")]


def test_a_body_until_close_is_sent_at_the_app_eof() -> None:
    wire = Wire()
    wire.client(GET)
    wire.app(b"HTTP/1.0 200 OK\r\n\r\nuntil close")
    assert wire.kinds() == [(b"1", b"#1")]
    wire.tracker.app_eof()
    wire.app(b"")
    assert decode_response(wire.messages()[1]).body == b"until close"


def test_an_upgrade_gets_no_response_message() -> None:
    wire = Wire()
    wire.client(GET + UPGRADE)
    wire.app(OK)
    wire.app(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi")
    assert not wire.tap.response_progressed()
    assert wire.kinds() == [(b"1", b"#1"), (b"1", b"#2"), (b"2", b"#1")]


def test_connect_and_unframed_requests_get_no_response_message() -> None:
    wire = Wire()
    assert not wire.client(GET + CONNECT)
    wire.app(OK + b"HTTP/1.1 200 Connection Established\r\n\r\ntunnel bytes")
    assert wire.kinds() == [(b"1", b"#1"), (b"2", b"#1")]
    smuggled = Wire()
    ambiguous = (
        b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert not smuggled.client(GET + ambiguous + b"0\r\n\r\n")
    smuggled.app(OK + b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    assert smuggled.kinds() == [(b"1", b"#1"), (b"2", b"#1")]
    assert smuggled.tracker.ledger.recorder is None  # nothing left to pair: recording ended


def test_raw_http_targets_get_only_the_requests() -> None:
    wire = Wire(raw=True)
    wire.client(GET)
    wire.app(OK)
    assert wire.raw is not None
    raw = cast(FakeTransport, wire.raw.conn(1).transport)
    assert bytes(raw.sent) == GET
    assert wire.kinds() == [(b"1", b"#1"), (b"2", b"#1")]


def test_a_request_the_target_dropped_gets_no_response_message() -> None:
    wire = Wire(buffer_bytes=1000)
    wire.client(GET)
    wire.target.waiting = 2000  # pretend the target is far behind: the next copy drops
    wire.client(GET)
    wire.target.waiting = 0
    wire.app(OK + OK)
    assert wire.kinds() == [(b"1", b"#1"), (b"2", b"#1")]
    assert wire.target.counters.dropped == 1
    assert wire.counts() == (1, 0)


def test_a_slow_hop_drops_response_messages_first_and_counts_them() -> None:
    wire = Wire(buffer_bytes=1000)
    wire.client(GET)
    wire.gor.backlog(1, 450)  # under the request cap, past half of it
    wire.app(OK)
    assert wire.counts() == (0, 1)
    wire.client(GET)  # requests still go
    assert wire.target.counters.mirrored == 2
    wire.gor.backlog(1, 0)
    wire.client(GET)
    wire.app(OK + OK)
    assert wire.counts() == (2, 1)
    line = stats_lines("stats", wire.counters, [(wire.target.name, wire.target.counters)])[0]
    assert (line["compare_sent"], line["compare_dropped"]) == (2, 1)


def test_a_connection_another_stream_owns_drops_the_response_message() -> None:
    wire = Wire()
    other = wire.comparison.connection(RequestFramer())
    wire.client(GET)
    other_tracker, other_tap = other
    other_tap.feed(POST[:-1])  # another client's upload now owns the connection
    wire.app(OK)
    assert wire.counts() == (0, 1)
    other_tap.feed(POST[-1:])
    other_tracker.feed(OK)
    wire.app(b"")
    assert wire.counts() == (1, 1)


def test_a_long_body_travels_cut_with_its_length_and_digest() -> None:
    wire = Wire(body_limit=16)
    body = bytes(range(256)) * 4
    wire.client(GET)
    wire.app(ok(body))
    response = decode_response(wire.messages()[1])
    assert (response.body, response.body_length) == (body[:16], len(body))
    assert response.digest == hashlib.sha256(body).hexdigest()
    assert b"X-Traffic-Duplicator-Body: length=1024; sha256=" in wire.messages()[1].payload


def test_a_chunked_body_travels_rechunked() -> None:
    wire = Wire()
    wire.client(GET)
    wire.app(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    wire.app(b"2\r\nde\r\n0\r\n\r\n")
    response = decode_response(wire.messages()[1])
    assert (response.body, response.chunked) == (b"abcde", True)
