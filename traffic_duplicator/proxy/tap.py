"""Frames one client connection's bytes into requests and hands each to every mirror target.

The relay has already written the bytes to the app when the tap sees them: nothing here
can delay the primary path. A request whose bytes all arrived in one read is sent whole;
one that spans reads is streamed, and owns a connection per target until its end.
"""

from __future__ import annotations

from traffic_duplicator.http1 import BODY, END, HEAD, RequestFramer
from traffic_duplicator.proxy.counters import RelayCounters
from traffic_duplicator.proxy.mirror import MirrorConnection, MirrorTarget
from traffic_duplicator.proxy.responses import ResponseTracker

Stream = tuple[MirrorTarget, MirrorConnection]


class Tap:
    """The request side of one connection: framer in, whole requests or streams out."""

    __slots__ = ("_counters", "_started", "_streams", "_targets", "_tracker", "framer")

    def __init__(
        self,
        framer: RequestFramer,
        targets: tuple[MirrorTarget, ...],
        tracker: ResponseTracker,
        counters: RelayCounters,
    ) -> None:
        self.framer = framer
        self._targets = targets
        self._tracker = tracker
        self._counters = counters
        self._streams: list[Stream] | None = None  # the request in progress, per target
        self._started = 0  # requests whose head was seen: the index of the next one

    def feed(self, data: bytes) -> bool:
        """Frame and mirror `data`; False once the connection is not HTTP any more."""
        parts: list[bytes] | None = None
        close = False
        for event in self.framer.feed(data):
            kind = event[0]
            if kind == BODY:
                if parts is not None:
                    parts.append(event[1])
                elif self._streams:
                    for target, conn in self._streams:
                        target.stream(conn, event[1])
            elif kind == HEAD:
                head = event[2]
                parts = [event[1]]
                # An upgrade, like Connection: close, ends a raw target's connection for
                # HTTP: a 101 from the target would turn it into a tunnel.
                close = head.close or head.upgrade
                method = head.method
                if method == b"HEAD":
                    self._tracker.expect_head(self._started)
                elif method == b"CONNECT":
                    parts = None  # a tunnel request is not replayed, only relayed
                self._started += 1
            elif kind == END:
                self._counters.requests += 1
                if parts is not None:
                    whole = parts[0] if len(parts) == 1 else b"".join(parts)
                    for target in self._targets:
                        target.send(whole, close)
                    parts = None
                elif self._streams is not None:
                    for target, conn in self._streams:
                        target.end(conn)
                    self._streams = None
            else:  # OPAQUE: an upgrade, a CONNECT, or bytes that are not HTTP
                self.abandon()
                return False
        if parts is not None:
            first = parts[0] if len(parts) == 1 else b"".join(parts)
            streams = []
            for target in self._targets:
                stream = target.begin(first, close)
                if stream is not None:
                    streams.append((target, stream))
            self._streams = streams
        return True

    def abandon(self) -> None:
        """Stop mid-request (client gone, or not HTTP): partial copies are cut, not sent."""
        if self._streams:
            for target, conn in self._streams:
                target.abandon(conn)
        self._streams = None
