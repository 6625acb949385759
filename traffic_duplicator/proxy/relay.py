"""One client connection and its app connection: bytes relayed both ways, untouched.

Backpressure is symmetric: when one side's transport holds too many unsent bytes, the
other side stops reading until it drains (uvicorn's flow control, both ways), so a slow
client slows reading from the app and a slow app slows reading from the client.
Client bytes go to the app first; the tap (mirroring) sees them afterwards.

Half-close: a client EOF becomes an EOF to the app while the response keeps flowing; an
app EOF or close flushes what is pending to the client, then closes it.

Small writes are never held back by Nagle's algorithm: uvloop sets TCP_NODELAY on every
TCP transport; asyncio sets it on the app's socket, and the client's inherits it from the
listening socket (server.bind).

The loop is looked up once, in the context: asyncio.get_running_loop() makes a getpid()
system call on every call before Python 3.12. Other per-connection changes were measured
and not kept (bench/README.md, "Per connection: what was tried").
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass, field
from typing import Any, cast

from traffic_duplicator.http1 import RequestFramer
from traffic_duplicator.logs import EventLog, RateLimitedLog
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
    relays: set[ClientSide] = field(default_factory=set)
    all_closed: asyncio.Event = field(default_factory=asyncio.Event)

    def opened(self, relay: ClientSide) -> None:
        self.relays.add(relay)
        self.counters.connections += 1
        self.counters.open += 1

    def closed(self, relay: ClientSide) -> None:
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


class ClientSide(asyncio.Protocol):
    """The client's connection; it owns the pair's state."""

    __slots__ = (
        "app",
        "app_transport",
        "closed",
        "connect_task",
        "context",
        "draining",
        "early",
        "eof",
        "framer",
        "tap",
        "tracker",
        "transport",
    )

    def __init__(self, context: RelayContext) -> None:
        self.context = context
        self.transport: asyncio.Transport | None = None
        self.app: AppSide | None = None
        self.app_transport: asyncio.Transport | None = None
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
        self.connect_task: asyncio.Task[Any] | None = None
        self.closed = False
        self.eof = False  # the client half-closed
        self.draining = False
        self.early: list[bytes] = []  # read before the app connection was up

    # ---- client transport callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport; both have its methods.
        self.transport = cast(asyncio.Transport, transport)
        # Reading stops until the app connection exists. uvloop ignores a pause before
        # its first read, so data_received also holds (one read) and pauses then.
        self.transport.pause_reading()
        self.context.opened(self)
        if self.context.verbose:
            peer = transport.get_extra_info("peername")
            self.context.log.event(at="connection_opened", peer=str(peer[:2]) if peer else None)
        self.connect_task = self.context.loop.create_task(self._connect_app())

    def data_received(self, data: bytes) -> None:
        app = self.app_transport
        if app is None:
            self.early.append(data)
            if self.transport is not None:
                self.transport.pause_reading()
            return
        app.write(data)
        tap = self.tap
        if tap is not None and not tap.feed(data):
            self._unframed()

    def eof_received(self) -> bool:
        if not self.eof:
            self.eof = True
            if self.tap is not None and self.framer.in_request:
                self.tap.abandon()
            app = self.app_transport
            if app is not None and not app.is_closing() and app.can_write_eof():
                app.write_eof()
            if self.idle():
                self.close()  # nothing more can be asked, and everything was answered
        return True  # keep the transport open: the response is still coming

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        # Break the ClientSide <-> AppSide cycle, so that reference counting frees the
        # pair at once instead of leaving it to the cyclic garbage collector.
        self.app = None
        self.context.closed(self)
        if self.tap is not None:
            self.tap.abandon()
        if self.app_transport is not None:
            self.app_transport.close()  # what the client sent still reaches the app
        elif self.connect_task is not None:
            self.connect_task.cancel()
        if self.context.verbose:
            self.context.log.event(
                at="connection_closed",
                requests=self.framer.requests,
                error=str(exc) if exc else None,
            )

    def pause_writing(self) -> None:
        app = self.app_transport
        if app is not None and not app.is_closing():
            app.pause_reading()

    def resume_writing(self) -> None:
        app = self.app_transport
        if app is not None and not app.is_closing():
            app.resume_reading()

    # ---- the app connection ---------------------------------------------------------

    async def _connect_app(self) -> None:
        context = self.context
        loop = context.loop
        deadline = loop.time() + APP_CONNECT_PATIENCE
        while True:
            try:
                await loop.create_connection(
                    lambda: AppSide(self), context.app_host, context.app_port
                )
                return
            except OSError as exc:
                retry = (
                    exc.errno == errno.ECONNREFUSED
                    and loop.time() < deadline
                    and not self.closed
                    and not context.draining
                )
                if not retry:
                    context.errors.event(
                        "relay",
                        at="relay_error",
                        relay=f"{context.app_host}:{context.app_port}",
                        error=exc.strerror or type(exc).__name__,
                    )
                    if self.transport is not None:
                        self.transport.close()
                    return
            await asyncio.sleep(APP_CONNECT_RETRY_DELAY)

    def app_connected(self, app: AppSide, transport: asyncio.Transport) -> None:
        self.connect_task = None
        self.app = app
        self.app_transport = transport
        client = self.transport
        assert client is not None
        if self.closed:
            transport.close()
            return
        early = self.early
        if early:
            self.early = []
            for data in early:
                self.data_received(data)
        if self.eof:
            self.eof = False
            self.eof_received()  # now that the app can be told
        else:
            client.resume_reading()
        if self.draining:
            self.context.loop.call_later(DRAIN_IDLE_GRACE, self._close_if_idle)

    def app_closed(self) -> None:
        """The app closed or half-closed: flush to the client, then close it."""
        client = self.transport
        if client is not None and not client.is_closing():
            client.close()

    def responses_progressed(self) -> None:
        """A response head or end went by: upgrades, and closing when draining."""
        tracker = self.tracker
        assert tracker is not None
        if self.tap is not None and not self.tap.response_progressed():
            self._unframed()  # upgraded: the tap stopped mirroring
        if tracker.tunnel:
            # 101 Switching Protocols: the rest is not HTTP in either direction.
            self.tracker = None
            if self.app is not None:
                self.app.tracker = None
            return
        if (self.draining or self.eof) and self.idle():
            self.close()

    def _unframed(self) -> None:
        self.tap = None  # the tap stopped mirroring, and counted why

    # ---- idle, drain and close ------------------------------------------------------

    def idle(self) -> bool:
        """True when every request forwarded has its complete response."""
        tracker = self.tracker
        framer = self.framer
        if (
            tracker is None
            or self.app_transport is None
            or framer.opaque
            or framer.in_request
            or framer.awaiting_upgrade
        ):
            return False
        return not tracker.in_response and tracker.completed >= framer.requests

    def drain(self) -> None:
        self.draining = True
        if self.app_transport is not None and self.idle():
            self.close()

    def _close_if_idle(self) -> None:
        if not self.closed and self.idle():
            self.close()

    def close(self) -> None:
        """Close both sides after flushing what each has pending."""
        if self.transport is not None:
            self.transport.close()
        if self.app_transport is not None:
            self.app_transport.close()

    def abort(self) -> None:
        """Close both sides now (the drain timeout has passed)."""
        if self.transport is not None:
            self.transport.abort()
        if self.app_transport is not None:
            self.app_transport.abort()
        elif self.connect_task is not None:
            self.connect_task.cancel()


class AppSide(asyncio.Protocol):
    """The app's connection: responses to the client, and the tracker that reads them."""

    __slots__ = ("client", "client_transport", "tracker", "transport")

    def __init__(self, client: ClientSide) -> None:
        self.client = client
        self.client_transport = client.transport
        self.tracker = client.tracker
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport; both have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.client.app_connected(self, self.transport)

    def data_received(self, data: bytes) -> None:
        client = self.client_transport
        assert client is not None
        client.write(data)
        tracker = self.tracker
        if tracker is not None and tracker.feed(data):
            self.client.responses_progressed()

    def eof_received(self) -> bool:
        tracker = self.tracker
        if tracker is not None:
            tracker.app_eof()  # a body read until the close is complete (RFC 9112 6.3)
        self.client.app_closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.app_closed()

    def pause_writing(self) -> None:
        client = self.client_transport
        if client is not None and not client.is_closing():
            client.pause_reading()

    def resume_writing(self) -> None:
        client = self.client_transport
        if client is not None and not client.is_closing():
            client.resume_reading()
