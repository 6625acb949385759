"""The `protocols` core: one client connection and its app connection on asyncio transports.

It relays where `select.epoll` does not exist (macOS), where the epoll core is turned off
(TRAFFIC_DUPLICATOR_EPOLL=0), or where the app's address is a name looked up per
connection; on Linux the `epoll` core (poller.py, rawpair.py) is the default. The
decisions are `pair.Pair`'s, shared with the epoll core: this module only moves bytes.

Backpressure is symmetric: when one side's transport holds too many unsent bytes, the
other side stops reading until it drains (uvicorn's flow control, both ways), so a slow
client slows reading from the app and a slow app slows reading from the client.
Client bytes go to the app first; the tap (mirroring) sees them afterwards.

Half-close: a client EOF becomes an EOF to the app while the response keeps flowing; an
app EOF or close flushes what is pending to the client, then closes it, except an app EOF
in the middle of a request (`Pair._app_eof`): then the client gets an EOF after what is
pending, and its bytes still go to the app.

Small writes are never held back by Nagle's algorithm: uvloop sets TCP_NODELAY on every
TCP transport; asyncio sets it on the app's socket, and the client's inherits it from the
listening socket (server.bind).

The loop is looked up once, in the context: asyncio.get_running_loop() makes a getpid()
system call on every call before Python 3.12. Other per-connection changes were measured
and not kept (bench/README.md, "Per connection: what was tried").
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

from traffic_duplicator.proxy.pair import (
    APP_CONNECT_PATIENCE,
    APP_CONNECT_RETRY_DELAY,
    DRAIN_IDLE_GRACE,
    Pair,
    RelayContext,
    log_fields,
)

__all__ = [
    "APP_CONNECT_PATIENCE",
    "APP_CONNECT_RETRY_DELAY",
    "DRAIN_IDLE_GRACE",
    "AdoptedSide",
    "AppSide",
    "ClientSide",
    "RelayContext",
]


class ClientSide(Pair, asyncio.Protocol):
    """The client's connection; it owns the pair's state."""

    __slots__ = ("app", "app_transport", "connect_task", "early", "transport")

    def __init__(self, context: RelayContext) -> None:
        super().__init__(context)
        self._no_transports()

    def _no_transports(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.app: AppSide | None = None
        self.app_transport: asyncio.Transport | None = None
        self.connect_task: asyncio.Task[Any] | None = None
        self.early: list[bytes] = []  # read before the app connection was up

    # ---- client transport callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport; both have its methods.
        self.transport = cast(asyncio.Transport, transport)
        # Reading stops until the app connection exists. uvloop ignores a pause before
        # its first read, so data_received also holds (one read) and pauses then.
        self.transport.pause_reading()
        self._opened(transport.get_extra_info("peername") if self.context.verbose else None)
        self.connect_task = self.context.loop.create_task(self._connect_app())

    def data_received(self, data: bytes) -> None:
        app = self.app_transport
        if app is None:
            self.early.append(data)
            if self.transport is not None:
                self.transport.pause_reading()
            return
        app.write(data)
        self._client_bytes(data)

    def eof_received(self) -> bool:
        self._client_eof()
        return True  # keep the transport open: the response is still coming

    def _eof_to_app(self) -> None:
        write_eof(self.app_transport)

    def _eof_to_client(self) -> None:
        write_eof(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        # Break the ClientSide <-> AppSide cycle, so that reference counting frees the
        # pair at once instead of leaving it to the cyclic garbage collector.
        self.app = None
        if not self.closed:  # a failed hand-over may have counted it (AdoptedSide._adopted)
            self._lost(exc)
        if self.app_transport is not None:
            self.app_transport.close()  # what the client sent still reaches the app
        elif self.connect_task is not None:
            self.connect_task.cancel()

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
                if not self._connect_failed(exc, deadline):
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
        self.app_ready = True
        if self.eof:
            self.eof = False
            self._client_eof()  # now that the app can be told
        else:
            client.resume_reading()
        self._app_up()

    def app_closed(self) -> None:
        """The app closed or half-closed: flush to the client, then close it."""
        client = self.transport
        if client is not None and not client.is_closing():
            client.close()

    def _untracked(self) -> None:
        self.tracker = None
        if self.app is not None:
            self.app.tracker = None

    # ---- close ---------------------------------------------------------------------

    def close(self) -> None:
        """Close both sides after flushing what each has pending."""
        if self.transport is None:  # being taken over: nothing is pending yet
            if self.connect_task is not None:
                self.connect_task.cancel()
            return
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


class AdoptedSide(ClientSide):
    """A keep-alive connection taken over from the epoll core (rawpair.RawPair._hand_over),
    idle between two requests: already counted open, its app socket already connected."""

    __slots__ = ()

    def __init__(self, pair: Pair) -> None:
        self._take_over(pair)
        self._no_transports()
        # Not idle until the app transport exists: the bytes that started the hand-over
        # wait in the kernel, so a drain meanwhile must not close the connection.
        self.app_ready = False

    @classmethod
    def take_over(
        cls, pair: Pair, client: socket.SocketType, app: socket.SocketType
    ) -> AdoptedSide:
        """Relay `pair`'s connection from now on.

        `client` and `app` are its connected sockets (the loops make them non-blocking),
        no longer on the epoll core's poller; bytes that arrived meanwhile wait in the
        kernel. asyncio makes transports for existing sockets only in coroutines, so a
        task does it, kept in `connect_task` until both exist; a close or abort meanwhile
        cancels it.
        """
        side = cls(pair)
        task = side.context.loop.create_task(side._adopt(client, app))
        task.add_done_callback(lambda done: side._adopted(done, client, app))
        side.connect_task = task
        return side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """No count and no connect: `_adopt` brings the app socket next."""
        self.transport = cast(asyncio.Transport, transport)
        self.transport.pause_reading()  # until the app transport exists, as for any pair

    async def _adopt(self, client: socket.SocketType, app: socket.SocketType) -> None:
        loop = self.context.loop
        # Both loops take the C socket type the epoll core uses (typeshed says socket.socket).
        await loop.connect_accepted_socket(lambda: self, cast(socket.socket, client))
        await loop.create_connection(lambda: AppSide(self), sock=cast(socket.socket, app))

    def _adopted(
        self, task: asyncio.Task[None], client: socket.SocketType, app: socket.SocketType
    ) -> None:
        """The hand-over's end. A failure (a reset meanwhile) or a cancellation (even one
        before the task ran) closes both sockets and counts the connection closed."""
        exc = None if task.cancelled() else task.exception()
        if exc is None and not task.cancelled():
            return
        if self.app_transport is None:
            app.close()
        if self.transport is not None:
            # The transport owns the client socket: it closes it, once. Closing the
            # socket here as well would free its descriptor number while uvloop's handle
            # still holds it, and libuv's later close could hit a reused number.
            self.transport.abort()
        else:
            client.close()
        if not self.closed:
            # uvloop calls connection_made, but never connection_lost, for a transport
            # whose connect_accepted_socket was cancelled: count it closed here.
            self._lost(exc)
        if exc is not None and not isinstance(exc, OSError):
            self.context.errors.event("relay_bug", at="relay_bug", **log_fields(exc))


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
        if self.client._app_eof():
            return True  # lingering: the transport stays open, the app still reads
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


def write_eof(transport: asyncio.Transport | None) -> None:
    """Half-close `transport` after what is pending to it, if it is still open."""
    if transport is not None and not transport.is_closing() and transport.can_write_eof():
        transport.write_eof()
