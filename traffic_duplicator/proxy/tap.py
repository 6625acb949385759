"""Which of one client connection's requests are copied to the mirrors, as events in, actions out.

`TapMachine` is fed what happens on the connection and answers with what to do:

    events                         actions (tuples, kind first)
    client_bytes(data)             (MIRROR, request, close)  a whole request, to every target
    response(tunnel, finals)       (BEGIN, first, close)     a request that spans reads starts
    client_eof()                   (MORE, data)              more of it
    closed()                       (FINISH,)                 its end
                                   (CUT,)                    its end will never come: drop it
                                   (EXPECT, index, method)   the tracker frames that response apart
                                   (COUNT,)                  a request was relayed to the app
                                   (STOP, reason, detail)    mirroring ends for this connection

It has three states: between requests, streaming one, and stopped. Mirroring stops for
good on a CONNECT, an upgrade, and on any request whose framing a server could read in
another way (`http1.head`): the relay goes on passing the bytes untouched, but a request
production may never have processed must not reach a mirror (RFC 9112 section 11.2).

`Tap` runs the actions against the mirror targets, the response tracker and the counters.
The relay has already written the bytes to the app when the tap sees them: nothing here
can delay the primary path.
"""

from __future__ import annotations

import enum
from typing import Any, Final

from traffic_duplicator.http1 import (
    BODY,
    END,
    EXPECTED,
    HEAD,
    REASONS,
    RequestFramer,
    RequestHead,
)
from traffic_duplicator.logs import RateLimitedLog
from traffic_duplicator.proxy.counters import RelayCounters
from traffic_duplicator.proxy.mirror import MirrorConnection, MirrorTarget
from traffic_duplicator.proxy.responses import ResponseTracker

MIRROR: Final = 0
BEGIN: Final = 1
MORE: Final = 2
FINISH: Final = 3
CUT: Final = 4
EXPECT: Final = 5
COUNT: Final = 6
STOP: Final = 7

Action = tuple[Any, ...]  # (kind, *payload): see the module docstring

_COUNT: Final = (COUNT,)
_FINISH: Final = (FINISH,)
_CUT: Final = (CUT,)
# Methods whose response the tracker must frame apart (RFC 9112 section 6.3 items 1-2).
_FRAMED_APART: Final = frozenset({b"HEAD", b"CONNECT"})


class TapState(enum.Enum):
    BETWEEN = "between requests"  # nothing begun on the mirrors
    STREAMING = "streaming"  # a request that spans reads is open on the mirrors
    STOPPED = "stopped"  # mirroring ended for this connection


class TapMachine:
    """The tap's decisions for one connection; see the module docstring. No I/O."""

    __slots__ = ("_started", "framer", "state")

    def __init__(self, framer: RequestFramer) -> None:
        self.framer = framer
        self.state = TapState.BETWEEN
        self._started = 0  # requests whose head was seen: the index of the next one

    def client_bytes(self, data: bytes) -> list[Action]:
        """The client sent `data` (already relayed to the app)."""
        if self.state is TapState.STOPPED:
            return []
        actions: list[Action] = []
        parts: list[bytes] | None = None  # the request in this read, while it is whole
        close = False
        for event in self.framer.feed(data):
            kind = event[0]
            if kind == BODY:
                if parts is not None:
                    parts.append(event[1])
                elif self.state is TapState.STREAMING:
                    actions.append((MORE, event[1]))
            elif kind == HEAD:
                head = event[2]
                # An upgrade, like Connection: close, ends a raw target's connection for
                # HTTP: a 101 from the target would turn it into a tunnel.
                close = head.close or head.upgrade
                parts = (
                    self._framed_apart(head, event[1], actions)
                    if head.method in _FRAMED_APART
                    else [event[1]]
                )
                self._started += 1
            elif kind == END:
                actions.append(_COUNT)
                if parts is not None:
                    actions.append((MIRROR, b"".join(parts), close))
                    parts = None
                else:
                    self._finish_stream(actions)
            else:  # OPAQUE: a CONNECT, an upgrade, or framing a server may read otherwise
                return actions + self._stop(event[1], event[2])
        if parts is not None:
            actions.append((BEGIN, b"".join(parts), close))
            self.state = TapState.STREAMING
        return actions

    def _finish_stream(self, actions: list[Action]) -> None:
        """The end of a request that began in an earlier read (or of a CONNECT)."""
        if self.state is TapState.STREAMING:
            actions.append(_FINISH)
            self.state = TapState.BETWEEN

    def _framed_apart(
        self, head: RequestHead, raw: bytes, actions: list[Action]
    ) -> list[bytes] | None:
        """A HEAD or CONNECT: the tracker must know; a CONNECT is relayed, not copied."""
        actions.append((EXPECT, self._started, head.method))
        return None if head.method == b"CONNECT" else [raw]

    def response(self, tunnel: bool, finals: int) -> list[Action]:
        """A response head or end went by; `finals` final responses so far."""
        if self.state is TapState.STOPPED:
            return []
        framer = self.framer
        if tunnel:
            # 101 Switching Protocols, or a 2xx to CONNECT: the rest is not HTTP.
            framer.give_up("upgrade")
            return self._stop("upgrade", REASONS["upgrade"])
        if framer.awaiting_upgrade and finals >= framer.requests:
            framer.resume()  # the app declined the upgrade: still HTTP
        return []

    def client_eof(self) -> list[Action]:
        """The client half-closed: a request it left unfinished never will be."""
        if self.state is TapState.STREAMING:
            self.state = TapState.BETWEEN
            return [_CUT]
        return []

    def closed(self) -> list[Action]:
        """The connection is gone (or mirroring is no longer wanted on it)."""
        actions = self.client_eof()
        self.state = TapState.STOPPED
        return actions

    def _stop(self, reason: str, detail: str) -> list[Action]:
        actions = self.client_eof()
        self.state = TapState.STOPPED
        actions.append((STOP, reason, detail))
        return actions


Stream = tuple[MirrorTarget, MirrorConnection]


class Tap:
    """Runs a TapMachine's actions: copies to the targets, the tracker, counters and logs."""

    __slots__ = ("_counters", "_errors", "_streams", "_targets", "_tracker", "machine")

    def __init__(
        self,
        framer: RequestFramer,
        targets: tuple[MirrorTarget, ...],
        tracker: ResponseTracker,
        counters: RelayCounters,
        errors: RateLimitedLog | None = None,
    ) -> None:
        self.machine = TapMachine(framer)
        self._targets = targets
        self._tracker = tracker
        self._counters = counters
        self._errors = errors
        self._streams: list[Stream] = []  # the streamed request, per target that took it

    @property
    def framer(self) -> RequestFramer:
        return self.machine.framer

    def feed(self, data: bytes) -> bool:
        """Frame and mirror `data`; False once mirroring has stopped on this connection."""
        return self._apply(self.machine.client_bytes(data))

    def response_progressed(self) -> bool:
        """The tracker saw a response head or end; False once mirroring has stopped."""
        tracker = self._tracker
        return self._apply(self.machine.response(tracker.tunnel, tracker.finals))

    def abandon(self) -> None:
        """The connection is closing: partial copies are cut, not sent."""
        self._apply(self.machine.closed())

    def _apply(self, actions: list[Action]) -> bool:
        for action in actions:
            kind = action[0]
            # The two actions of nearly every request, run in line: this is per request.
            if kind == COUNT:
                self._counters.requests += 1
            elif kind == MIRROR:
                for target in self._targets:
                    target.send(action[1], action[2])
            else:
                _RUN[kind](self, *action[1:])
        return self.machine.state is not TapState.STOPPED

    def _begin(self, first: bytes, close: bool) -> None:
        self._streams = []
        for target in self._targets:
            stream = target.begin(first, close)
            if stream is not None:
                self._streams.append((target, stream))

    def _more(self, data: bytes) -> None:
        for target, conn in self._streams:
            target.stream(conn, data)

    def _finish(self) -> None:
        for target, conn in self._streams:
            target.end(conn)
        self._streams = []

    def _cut(self) -> None:
        for target, conn in self._streams:
            target.abandon(conn)
        self._streams = []

    def _expect(self, index: int, method: bytes) -> None:
        self._tracker.expect(index, method)

    def _stop(self, reason: str, detail: str) -> None:
        counters = self._counters
        counters.unframed += 1
        counters.unframed_reasons[reason] = counters.unframed_reasons.get(reason, 0) + 1
        if reason not in EXPECTED and self._errors is not None:
            self._errors.event("unframed", at="unframed", reason=reason, detail=detail)


# Action kind -> what runs it. Unbound, so that a Tap holds no reference cycle and is
# freed with its connection by reference counting alone.
_RUN: Final[dict[int, Any]] = {
    BEGIN: Tap._begin,
    MORE: Tap._more,
    FINISH: Tap._finish,
    CUT: Tap._cut,
    EXPECT: Tap._expect,
    STOP: Tap._stop,
}
