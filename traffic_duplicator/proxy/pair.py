"""What every relay core decides about one client/app pair, written once.

Two cores move the bytes: `epoll` (raw non-blocking sockets, `rawpair` and `poller`) and
`protocols` (asyncio transports, `relay`). Both subclass `Pair`, which owns the pair's
state and every decision that does not depend on how bytes move: what the tap and the
tracker see, when the pair is idle, what a drain, a client EOF or an app EOF does, when a
refused app connection is retried, and the counters and verbose events. A core supplies
four moves: `close` (flush, then close both sides), `abort` (close both now),
`_eof_to_app` and `_eof_to_client` (half-close towards one side, after what is pending to
it), and calls the rest as bytes and ends arrive.

An app EOF closes both sides at once, except in the middle of a request: an app that
answers an upload early (`413` after the head) and half-closes keeps reading the body (a
lingering close), and closing the client while its upload is still unread in the proxy's
socket would make the kernel reset the connection, discarding the answer before the
client reads it (RFC 9112 9.6). So the pair lingers: the client is half-closed too and
its upload still relayed to the app until its EOF, a failure, or LINGERING_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass, field

from traffic_duplicator.http1 import RequestFramer
from traffic_duplicator.logs import EventLog, LogValue, RateLimitedLog
from traffic_duplicator.proxy.counters import RelayCounters
from traffic_duplicator.proxy.mirror import MirrorTarget
from traffic_duplicator.proxy.responses import ResponseTracker
from traffic_duplicator.proxy.tap import Tap
from traffic_duplicator.proxy.track import Comparison

# While the app is starting (refusing connections), a client waits this long for it.
APP_CONNECT_PATIENCE = 2.0
APP_CONNECT_RETRY_DELAY = 0.1
# During a drain, a connection opened just before the signal gets this long to send a
# request before it counts as idle.
DRAIN_IDLE_GRACE = 1.0
# How long a pair lingers after the app half-closed in the middle of a request (module
# docstring) before both sides close: nginx's `lingering_timeout` default (5 s,
# ngx_http_core_module), here a bound on the whole lingering.
LINGERING_TIMEOUT = 5.0


@dataclass
class RelayContext:
    """What every relay shares: the loop, where the app is, the mirrors, counters and logs."""

    loop: asyncio.AbstractEventLoop
    app_host: str
    app_port: int
    targets: tuple[MirrorTarget, ...]
    counters: RelayCounters
    errors: RateLimitedLog
    log: EventLog
    verbose: bool = False
    compare: Comparison | None = None  # --compare: production's responses go to gor:// targets
    draining: bool = False
    relays: set[Pair] = field(default_factory=set)
    all_closed: asyncio.Event = field(default_factory=asyncio.Event)

    def opened(self, relay: Pair) -> None:
        self.relays.add(relay)
        self.counters.connections += 1
        self.counters.open += 1

    def closed(self, relay: Pair) -> None:
        self.relays.discard(relay)
        self.counters.open -= 1
        if self.draining and not self.relays:
            self.all_closed.set()

    def drain(self) -> None:
        """Shutdown: close idle connections now, the others after their last response."""
        self.draining = True
        for relay in list(self.relays):
            relay.drain()
        if not self.relays:
            self.all_closed.set()


class Pair:
    """One client connection and its app connection: the state both cores share."""

    __slots__ = (
        "app_ready",
        "closed",
        "context",
        "draining",
        "eof",
        "framer",
        "lingering",
        "tap",
        "tracker",
    )

    def __init__(self, context: RelayContext) -> None:
        self.context = context
        self.framer = RequestFramer()
        self.tracker: ResponseTracker | None
        self.tap: Tap | None
        if context.compare is None:
            self.tracker = ResponseTracker()
            self.tap = Tap(
                self.framer, context.targets, self.tracker, context.counters, context.errors
            )
        else:
            self.tracker, self.tap = context.compare.connection(self.framer)
        self.app_ready = False  # the app connection is up
        self.closed = False  # the client connection is gone
        self.eof = False  # the client half-closed
        self.draining = False
        # Set while the pair lingers (LINGERING_TIMEOUT): the timer that ends it.
        self.lingering: asyncio.TimerHandle | None = None

    # ---- the moves each core makes its own way ----------------------------------------

    def close(self) -> None:
        """Close both sides after flushing what each has pending."""
        raise NotImplementedError

    def abort(self) -> None:
        """Close both sides now (the drain timeout has passed)."""
        raise NotImplementedError

    def _eof_to_app(self) -> None:
        """Half-close towards the app (after what is pending to it)."""
        raise NotImplementedError

    def _eof_to_client(self) -> None:
        """Half-close towards the client (after what is pending to it)."""
        raise NotImplementedError

    def _take_over(self, other: Pair) -> None:
        """Carry on `other`'s connection: its state (framer, tap, tracker, flags) becomes
        this pair's, and this pair replaces it among the context's relays (it stays
        counted as one open connection). The epoll core hands an idle keep-alive
        connection over to the protocols core this way (rawpair.RawPair._hand_over)."""
        for name in Pair.__slots__:
            setattr(self, name, getattr(other, name))
        relays = self.context.relays
        relays.discard(other)
        relays.add(self)

    # ---- opened and closed ---------------------------------------------------------

    def _opened(self, peer: object) -> None:
        """Counted as open; `peer` (the client's address) is only read when verbose."""
        context = self.context
        context.opened(self)
        if context.verbose:
            context.log.event(
                at="connection_opened", peer=str(peer[:2]) if isinstance(peer, tuple) else None
            )

    def _lost(self, exc: BaseException | None) -> None:
        """The client connection is gone: counters, the tap, the verbose event."""
        self.closed = True
        if self.lingering is not None:
            self.lingering.cancel()
        context = self.context
        context.closed(self)
        if self.tap is not None:
            self.tap.abandon()
        if context.verbose:
            context.log.event(
                at="connection_closed",
                requests=self.framer.requests,
                error=str(exc) if exc else None,
            )

    # ---- the app connection ---------------------------------------------------------

    def _connect_failed(self, exc: OSError, deadline: float) -> bool:
        """True to try again later (the app is starting); else the failure is logged."""
        context = self.context
        if (
            exc.errno == errno.ECONNREFUSED
            and context.loop.time() < deadline
            and not self.closed
            and not context.draining
        ):
            return True
        context.errors.event(
            "relay",
            at="relay_error",
            relay=f"{context.app_host}:{context.app_port}",
            error=exc.strerror or type(exc).__name__,
        )
        return False

    def _app_up(self) -> None:
        """The app connection exists: a pair opened while draining gets a grace period."""
        self.app_ready = True
        if self.draining:
            self.context.loop.call_later(DRAIN_IDLE_GRACE, self._close_if_idle)

    # ---- the bytes each way, after they were relayed ----------------------------------

    def _client_bytes(self, data: bytes) -> None:
        """The client sent `data`, already written towards the app: the tap sees it."""
        tap = self.tap
        if tap is not None and not tap.feed(data):
            self.tap = None  # the tap stopped mirroring, and counted why

    def _app_bytes(self, data: bytes) -> None:
        """The app sent `data`, already written towards the client: the tracker sees it."""
        tracker = self.tracker
        if tracker is not None and tracker.feed(data):
            self.responses_progressed()

    def _app_last_bytes(self, data: bytes) -> None:
        """The app sent `data`, already written towards the client, and closed after it.

        Both sides close now whatever the responses in `data` are, so where they end
        matters only when they are recorded (--compare): otherwise the tracker is not
        fed, which saves parsing the last response of every `Connection: close` exchange.
        """
        if self.context.compare is not None:
            self._app_bytes(data)

    def responses_progressed(self) -> None:
        """A response head or end went by: upgrades, and closing when draining."""
        tracker = self.tracker
        assert tracker is not None
        if self.tap is not None and not self.tap.response_progressed():
            self.tap = None  # upgraded: the tap stopped mirroring
        if tracker.tunnel:
            # 101 Switching Protocols: the rest is not HTTP in either direction.
            self._untracked()
            return
        if (self.draining or self.eof) and self.idle():
            self.close()

    def _untracked(self) -> None:
        self.tracker = None

    def _client_eof(self) -> None:
        """The client half-closed: the app is told, the response keeps flowing."""
        if self.eof:
            return
        self.eof = True
        if self.tap is not None and self.framer.in_request:
            self.tap.abandon()
        if self.lingering is not None:
            self.close()  # the client's last bytes were read: no reset
            return
        if self.app_ready:
            self._eof_to_app()
        if self.idle():
            self.close()  # nothing more can be asked, and everything was answered

    def _app_eof(self) -> bool:
        """The app closed its side: a body read until the close is complete (RFC 9112 6.3).

        True when the pair lingers (module docstring): the client is half-closed and
        still read. False when the core closes both sides now, as on every app EOF
        outside a request; it adds no system call to that path.
        """
        if self.lingering is not None:
            return True  # the same EOF seen again (the epoll core reads it once more)
        tracker = self.tracker
        if tracker is not None:
            tracker.app_eof()
        if not self.framer.in_request or self.eof or self.closed:
            return False
        self.lingering = self.context.loop.call_later(LINGERING_TIMEOUT, self._lingered)
        self._eof_to_client()
        return True

    def _lingered(self) -> None:
        """LINGERING_TIMEOUT has passed and the client still sends: close both now."""
        if not self.closed:
            self.abort()

    # ---- idle, drain and close ------------------------------------------------------

    def idle(self) -> bool:
        """True when every request forwarded has its complete response."""
        tracker = self.tracker
        framer = self.framer
        if (
            tracker is None
            or not self.app_ready
            or self.lingering is not None
            or framer.opaque
            or framer.in_request
            or framer.awaiting_upgrade
        ):
            return False
        return not tracker.in_response and tracker.completed >= framer.requests

    def drain(self) -> None:
        self.draining = True
        if self.app_ready and self.idle():
            self.close()

    def _close_if_idle(self) -> None:
        if not self.closed and self.idle():
            self.close()


def log_fields(exc: BaseException) -> dict[str, LogValue]:
    """An unexpected exception as log fields: its type and message, no traceback."""
    return {"error": f"{type(exc).__name__}: {exc}"}
