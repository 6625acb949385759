"""The tap as transcripts: events in, actions out, no sockets (mitmproxy's layer tests)."""

from __future__ import annotations

import io
from typing import Any

from traffic_duplicator.http1 import RequestFramer
from traffic_duplicator.logs import EventLog, RateLimitedLog
from traffic_duplicator.proxy.counters import RelayCounters
from traffic_duplicator.proxy.responses import ResponseTracker
from traffic_duplicator.proxy.tap import (
    BEGIN,
    COUNT,
    CUT,
    EXPECT,
    FINISH,
    MIRROR,
    MORE,
    STOP,
    Tap,
    TapMachine,
    TapState,
)

GET = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
CLOSE = b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
HEAD_REQUEST = b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"
UPGRADE = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def names(actions: list[Any]) -> list[Any]:
    """Actions with their kind spelled out, for readable assertions."""
    spelled = {
        MIRROR: "mirror",
        BEGIN: "begin",
        MORE: "more",
        FINISH: "finish",
        CUT: "cut",
        EXPECT: "expect",
        COUNT: "count",
        STOP: "stop",
    }
    return [(spelled[action[0]], *action[1:]) for action in actions]


def machine() -> TapMachine:
    return TapMachine(RequestFramer())


def state(tap: TapMachine) -> TapState:
    return tap.state  # read through a call, so that mypy does not narrow it between steps


def test_a_whole_request_in_one_read_is_counted_and_mirrored() -> None:
    tap = machine()
    assert names(tap.client_bytes(GET)) == [("count",), ("mirror", GET, False)]
    assert state(tap) is TapState.BETWEEN


def test_pipelined_requests_each_become_one_copy() -> None:
    assert names(machine().client_bytes(GET + POST + CLOSE)) == [
        ("count",),
        ("mirror", GET, False),
        ("count",),
        ("mirror", POST, False),
        ("count",),
        ("mirror", CLOSE, True),  # the copy closes its connection as the client's did
    ]


def test_a_request_across_reads_is_streamed_then_finished() -> None:
    tap = machine()
    assert names(tap.client_bytes(POST[:-3])) == [("begin", POST[:-3], False)]
    assert state(tap) is TapState.STREAMING
    assert names(tap.client_bytes(POST[-3:-1])) == [("more", b"ll")]
    assert names(tap.client_bytes(POST[-1:] + GET)) == [
        ("more", b"o"),
        ("count",),
        ("finish",),
        ("count",),
        ("mirror", GET, False),
    ]
    assert state(tap) is TapState.BETWEEN


def test_a_head_split_across_reads_begins_nothing_until_it_is_whole() -> None:
    tap = machine()
    assert tap.client_bytes(GET[:10]) == []
    assert names(tap.client_bytes(GET[10:])) == [("count",), ("mirror", GET, False)]


def test_head_requests_tell_the_tracker_by_their_index() -> None:
    assert names(machine().client_bytes(GET + HEAD_REQUEST)) == [
        ("count",),
        ("mirror", GET, False),
        ("expect", 1, b"HEAD"),
        ("count",),
        ("mirror", HEAD_REQUEST, False),
    ]


def test_connect_is_relayed_not_mirrored_and_stops_mirroring() -> None:
    tap = machine()
    connect = b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n"
    assert names(tap.client_bytes(connect + b"\x00tunnel")) == [
        ("expect", 0, b"CONNECT"),
        ("count",),
        ("stop", "connect", "a CONNECT request: the rest is a tunnel"),
    ]
    assert state(tap) is TapState.STOPPED
    assert tap.client_bytes(GET) == []


def test_an_upgrade_stops_mirroring_once_the_app_switches() -> None:
    tap = machine()
    assert names(tap.client_bytes(UPGRADE)) == [("count",), ("mirror", UPGRADE, True)]
    assert tap.response(tunnel=False, finals=0) == []
    assert names(tap.response(tunnel=True, finals=0))[0][:2] == ("stop", "upgrade")
    assert tap.framer.opaque
    assert tap.client_bytes(b"\x81\x85frame") == []


def test_an_upgrade_the_app_declines_leaves_the_connection_http() -> None:
    tap = machine()
    tap.client_bytes(UPGRADE)
    assert tap.response(tunnel=False, finals=1) == []  # e.g. 426 or 200: not switched
    assert names(tap.client_bytes(GET)) == [("count",), ("mirror", GET, False)]


def test_client_bytes_before_the_answer_to_an_upgrade_are_a_tunnel() -> None:
    tap = machine()
    tap.client_bytes(UPGRADE)
    assert [a[:2] for a in names(tap.client_bytes(b"\x81\x85frame"))] == [("stop", "upgrade")]


def test_a_request_left_unfinished_is_cut_at_eof_and_close() -> None:
    tap = machine()
    tap.client_bytes(POST[:-1])
    assert names(tap.client_eof()) == [("cut",)]
    assert tap.client_eof() == []
    assert tap.closed() == []
    assert state(tap) is TapState.STOPPED
    streaming = machine()
    streaming.client_bytes(POST[:-1])
    assert names(streaming.closed()) == [("cut",)]


def test_ambiguous_framing_stops_mirroring_before_the_smuggled_request() -> None:
    tap = machine()
    smuggler = (
        b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    )
    assert names(tap.client_bytes(GET + smuggler)) == [
        ("count",),
        ("mirror", GET, False),
        ("stop", "cl_and_te", "Content-Length together with Transfer-Encoding (RFC 9112 6.1)"),
    ]
    assert tap.client_bytes(SMUGGLED) == []


def test_a_bad_chunk_cuts_the_streamed_copy_and_stops() -> None:
    tap = machine()
    head = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert names(tap.client_bytes(head + b"3\r\nabc\r\n")) == [
        ("begin", head + b"3\r\nabc\r\n", False)
    ]
    actions = names(tap.client_bytes(b"5 \r\nhello\r\n0\r\n\r\n" + SMUGGLED))
    assert [a[:2] for a in actions] == [("cut",), ("stop", "chunk_syntax")]


# --- the Tap runs the actions ------------------------------------------------------------


class FakeTarget:
    """Records what the tap asks of a mirror target."""

    def __init__(self, takes_streams: bool = True) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.takes_streams = takes_streams

    def send(self, data: bytes, close: bool) -> None:
        self.calls.append(("send", data, close))

    def begin(self, data: bytes, close: bool) -> object | None:
        self.calls.append(("begin", data, close))
        return "conn" if self.takes_streams else None

    def stream(self, conn: object, data: bytes) -> None:
        self.calls.append(("stream", data))

    def end(self, conn: object) -> None:
        self.calls.append(("end",))

    def abandon(self, conn: object) -> None:
        self.calls.append(("abandon",))


def tap_with(*targets: FakeTarget, now: list[float] | None = None) -> tuple[Tap, io.StringIO]:
    out = io.StringIO()
    clock = now if now is not None else [0.0]
    errors = RateLimitedLog(EventLog(None, out), interval=5.0, clock=lambda: clock[0])
    tap = Tap(RequestFramer(), targets, ResponseTracker(), RelayCounters(), errors)  # type: ignore[arg-type]
    return tap, out


def test_the_tap_sends_streams_and_counts() -> None:
    up, behind = FakeTarget(), FakeTarget(takes_streams=False)
    tap, _ = tap_with(up, behind)
    assert tap.feed(GET)
    assert tap.feed(POST[:-1])
    assert tap.feed(POST[-1:])
    assert up.calls == [
        ("send", GET, False),
        ("begin", POST[:-1], False),
        ("stream", b"o"),
        ("end",),
    ]
    assert behind.calls == [("send", GET, False), ("begin", POST[:-1], False)]
    assert tap._counters.requests == 2


def test_the_tap_tells_the_tracker_about_head_requests() -> None:
    tap, _ = tap_with(FakeTarget())
    tap.feed(HEAD_REQUEST)
    tracker = tap._tracker
    tracker.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
    assert (tracker.completed, tracker.in_response) == (1, False)


def test_stopping_counts_the_reason_and_logs_one_line_per_interval() -> None:
    now = [100.0]
    target = FakeTarget()
    tap, out = tap_with(target, now=now)
    smuggler = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert not tap.feed(smuggler + SMUGGLED)
    assert target.calls == []
    counters = tap._counters
    assert (counters.unframed, counters.unframed_reasons) == (1, {"te_http10": 1})
    assert out.getvalue() == (
        'at=unframed reason=te_http10 detail="Transfer-Encoding in an HTTP/1.0 message '
        '(RFC 9112 6.1)"\n'
    )
    # A second connection within the interval is counted, not logged; the next line says so.
    second, _ = tap_with(FakeTarget(), now=now)
    second._errors = tap._errors
    second._counters = counters
    assert not second.feed(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n")
    assert counters.unframed_reasons == {"te_http10": 1, "space_before_colon": 1}
    assert out.getvalue().count("\n") == 1
    now[0] += 5.0
    third, _ = tap_with(FakeTarget(), now=now)
    third._errors = tap._errors
    assert not third.feed(b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n")
    assert out.getvalue().splitlines()[-1].endswith("suppressed=1")


def test_upgrades_and_connect_are_counted_but_not_logged() -> None:
    tap, out = tap_with(FakeTarget())
    tap.feed(UPGRADE)
    tap._tracker.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    assert not tap.response_progressed()
    assert tap._counters.unframed_reasons == {"upgrade": 1}
    assert out.getvalue() == ""
