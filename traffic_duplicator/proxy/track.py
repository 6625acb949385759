"""Comparison on: production's response travels with the request (`--compare`, issue 10).

What gor's `--input-raw-track-response` sends, the proxy sends to its gor:// targets: each
mirrored request as a type `1` message with an id, then production's response to it as a
type `2` message with the same id, `2 <id> <unix-ns> <latency-ns>` (gor's protocol.go,
`compare.capture.encode_response`). The latency runs from the end of the request to the
end of the response as the proxy saw them. Raw-HTTP targets get nothing more.

- `TrackedTarget` is a gor:// `MirrorTarget` that says which id and connection each type 1
  message got, and sends the type 2 on that same connection, after it: the receiver never
  sees a type 2 before its type 1. It sends a type 2 only while the target is less than
  half its `--mirror-buffer` behind, so a slow hop drops comparison data first (counted
  `compare_dropped`), keeping the other half for the requests themselves.
- `ComparingTap` tells the connection's `Ledger` about each request as it mirrors it;
  `RecordingTracker` feeds the app's bytes to it after they were written to the client,
  and sends the type 2 messages it returns. Both write only into the targets' corked
  buffers, flushed at the end of the loop iteration: nothing here can hold up a response.

With comparison off none of this exists: the relay builds the plain tracker and tap, and
gor:// targets are plain `MirrorTarget`s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from traffic_duplicator.compare.capture import encode_response
from traffic_duplicator.compare.model import CapturedResponse
from traffic_duplicator.gorproto import REQUEST
from traffic_duplicator.http1 import RequestFramer
from traffic_duplicator.logs import RateLimitedLog
from traffic_duplicator.proxy import tap
from traffic_duplicator.proxy.config import MirrorConfig, TargetSpec
from traffic_duplicator.proxy.connection import MirrorConnection
from traffic_duplicator.proxy.counters import CompareCounters, RelayCounters
from traffic_duplicator.proxy.framing import GorFraming
from traffic_duplicator.proxy.ledger import Ledger, Outcome
from traffic_duplicator.proxy.mirror import MirrorTarget
from traffic_duplicator.proxy.responses import ResponseTracker
from traffic_duplicator.proxy.tap import Action, Tap, TapState

# A type 2 message's header line and marker header, on top of the response's head and
# kept body (an upper bound, for the buffer check made before encoding).
MESSAGE_OVERHEAD = 256

# The tap's action kinds, looked up once (they are compared on every action).
_COUNT, _MIRROR, _BEGIN, _FINISH = tap.COUNT, tap.MIRROR, tap.BEGIN, tap.FINISH

# One copy of a request: the target, its type 1 message id, the connection it went on.
Copy = tuple["TrackedTarget", bytes, MirrorConnection]


class TrackedGorFraming(GorFraming):
    """gor framing that remembers the last id it framed and where the last request went."""

    __slots__ = ("conn", "message_id")

    def __init__(self) -> None:
        super().__init__()
        self.message_id = b""
        self.conn: MirrorConnection | None = None

    def _header(self) -> bytes:
        # GorFraming's header, keeping the id apart.
        self._id_counter = (self._id_counter + 1) & 0xFFFFFFFF
        self.message_id = message_id = b"%s%08x" % (self._id_prefix, self._id_counter)
        return b"%s %s %d 0\n" % (REQUEST, message_id, time.time_ns())

    def written(self, conn: MirrorConnection, size: int) -> None:
        self.conn = conn

    def take(self) -> MirrorConnection | None:
        """The connection the last whole request went on, once; None if it was not sent."""
        conn, self.conn = self.conn, None
        return conn


class TrackedTarget(MirrorTarget):
    """A gor:// target that also carries production's responses (module docstring)."""

    def __init__(self, spec: TargetSpec, config: MirrorConfig, **keywords: Any) -> None:
        super().__init__(spec, config, **keywords)  # MirrorTarget's keywords
        self.tracking = TrackedGorFraming()
        self._framing = self.tracking
        self.compare = self.counters.compare = CompareCounters()
        self._response_room = config.buffer_bytes // 2

    def send_response(
        self, message_id: bytes, conn: MirrorConnection, response: CapturedResponse, latency: int
    ) -> None:
        """Production's `response` as a type 2 message after type 1 `message_id` on `conn`,
        or dropped (counted) if the target is half behind or `conn` cannot take it now."""
        size = len(response.head) + len(response.body) + MESSAGE_OVERHEAD
        if (
            conn.dead
            or conn.retired  # it closes after its last request
            or conn.owned  # another request is streaming on it
            or self._closing
            or self.waiting + self.unanswered + size > self._response_room
            or (self.backlogged and self.behind() + size > self._response_room)
        ):
            self.compare.dropped += 1
            return
        conn.write(encode_response(message_id, response, latency))
        self.compare.sent += 1


def count_dropped(copies: Sequence[Copy]) -> None:
    for target, _, _ in copies:
        target.compare.dropped += 1


def deliver(outcomes: list[Outcome[Copy]]) -> None:
    """Send each complete response to every target that took its request."""
    for copies, response, latency in outcomes:
        for target, message_id, conn in copies:
            target.send_response(message_id, conn, response, latency)


class RecordingTracker(ResponseTracker):
    """The relay's tracker, also feeding production's responses to the ledger."""

    __slots__ = ("ledger",)

    def __init__(self, ledger: Ledger[Copy]) -> None:
        super().__init__()
        self.ledger = ledger

    def feed(self, data: bytes) -> bool:
        ledger = self.ledger
        if ledger.recorder is not None:
            for copies, response, latency in ledger.response_bytes(data):
                for target, message_id, conn in copies:
                    target.send_response(message_id, conn, response, latency)
        return ResponseTracker.feed(self, data)

    def app_eof(self) -> None:
        deliver(self.ledger.app_eof())


class ComparingTap(Tap):
    """The tap, also telling the ledger where each request's type 1 messages went."""

    __slots__ = ("_ledger", "_plain", "_stream_copies", "_tracked")

    def __init__(
        self,
        framer: RequestFramer,
        comparison: Comparison,
        tracker: RecordingTracker,
        counters: RelayCounters,
        errors: RateLimitedLog | None,
    ) -> None:
        super().__init__(framer, comparison.targets, tracker, counters, errors)
        self._ledger = tracker.ledger
        self._plain = comparison.plain
        self._tracked = comparison.tracked
        self._stream_copies: list[Copy] = []

    def _apply(self, actions: list[Action]) -> bool:
        ledger = self._ledger
        for action in actions:
            kind = action[0]
            if kind == _COUNT:
                self._counters.requests += 1
                abandoned = ledger.end()
                if abandoned:
                    count_dropped(abandoned)
            elif kind == _MIRROR:
                self._mirror(action[1], action[2])
            elif kind == _BEGIN:
                count_dropped(ledger.begin())
                self._begin_copies(action[1], action[2])
            elif kind == _FINISH:
                self._finish_copies()
            else:
                self._other(action)
        return self.machine.state is not TapState.STOPPED

    def _other(self, action: Action) -> None:
        kind = action[0]
        if kind == tap.EXPECT:
            if action[2] == b"HEAD":
                self._ledger.head_request()
            else:
                self._ledger.stop()  # CONNECT: the rest is a tunnel
            self._expect(action[1], action[2])
        elif kind == tap.CUT:
            self._ledger.cut()
            self._stream_copies = []
            self._cut()
        elif kind == tap.STOP:
            self._ledger.stop()
            self._stop(action[1], action[2])
        else:  # MORE
            self._more(action[1])

    def _mirror(self, data: bytes, close: bool) -> None:
        for target in self._plain:
            target.send(data, close)
        copies: list[Copy] = []
        for tracked in self._tracked:
            tracked.send(data, close)
            tracking = tracked.tracking
            conn = tracking.take()
            if conn is not None:
                copies.append((tracked, tracking.message_id, conn))
        if copies and not self._ledger.copied(copies):
            count_dropped(copies)

    def _begin_copies(self, first: bytes, close: bool) -> None:
        self._begin(first, close)
        self._stream_copies = [
            (target, target.tracking.message_id, conn)
            for target, conn in self._streams
            if isinstance(target, TrackedTarget)
        ]

    def _finish_copies(self) -> None:
        self._finish()
        # A stream reset midway (its target fell behind) left no complete type 1.
        copies = [copy for copy in self._stream_copies if not copy[2].dead]
        self._stream_copies = []
        if copies and not self._ledger.copied(copies):
            count_dropped(copies)


class Comparison:
    """Comparison on, for the whole proxy: builds each connection's tracker and tap."""

    def __init__(
        self,
        targets: tuple[MirrorTarget, ...],
        body_limit: int,
        counters: RelayCounters,
        errors: RateLimitedLog | None,
        clock: Callable[[], int] = time.monotonic_ns,  # nanoseconds; tests inject theirs
    ) -> None:
        self.targets = targets
        self.plain = tuple(target for target in targets if not isinstance(target, TrackedTarget))
        self.tracked = tuple(target for target in targets if isinstance(target, TrackedTarget))
        self.body_limit = body_limit
        self._counters = counters
        self._errors = errors
        self._clock = clock

    def connection(self, framer: RequestFramer) -> tuple[RecordingTracker, ComparingTap]:
        """A new client connection's tracker and tap."""
        tracker = RecordingTracker(Ledger(self.body_limit, self._clock))
        return tracker, ComparingTap(framer, self, tracker, self._counters, self._errors)
