"""The `epoll` core's pair: a client socket and an app socket, relayed by hand.

Why by hand: on `Connection: close` traffic (a new connection per request, as Heroku's
legacy router sends) the per-connection transports, protocols and tasks of asyncio and
uvloop cost more than the relaying itself. Two bare relays that only copy bytes measured
(bench/, 10k requests, 32 clients): 2.48 CPU-s on asyncio protocols + uvloop, 1.65 CPU-s
on raw sockets and one `select.epoll` in plain Python, against nginx `mirror`'s 1.88 and
the proxy's 3.43 on uvloop. So this core keeps the proxy's decisions (`pair.Pair`) and
replaces only the byte moving.

Each socket is registered once, edge-triggered, for input, output and the peer's
half-close (`EDGE`): two `epoll_ctl` ADDs per connection, no MOD, no DEL (closing a
socket removes it from the epoll). Edge-triggered rules, as epoll(7) states them: a read
shorter than the buffer empties the socket (new data raises a new edge), unless the
event says the peer closed (`END`), when reading goes on to the EOF; a side not read
while bytes to its peer are pending is read again, to the end, as soon as they are sent.
When the event says the peer's FIN has arrived (`CLOSED`), a short read is the last one
before the EOF, so the read that would return it is not made.

System calls a `Connection: close` request does without: the ioctl that would make the
accepted socket non-blocking (every recv and send passes MSG_DONTWAIT instead), the app
socket's TCP_NODELAY until a second write to it (`NODELAY`), and the EOF read above.

Flow control, bounded: at most one unsent buffer per direction (the rest of one read of
`READ_SIZE`); while it exists its source is not read, so a slow client slows the app and
a slow app slows the client, and the kernel's socket buffers hold the rest.

The client is not read before the app connection is up (it is registered then), so no
early bytes are kept. Half-close as in the protocols core: a client EOF becomes
`shutdown(SHUT_WR)` to the app once what is pending to it is sent; an app EOF flushes
what is pending to the client, then closes both, except in the middle of a request
(`Pair._app_eof`): then the client gets `shutdown(SHUT_WR)` once what is pending to it is
sent, the app is not read again, and the client's bytes still go to the app. A side that
fails (a reset) is closed at once; the other gets what is pending to it first.
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
from typing import TYPE_CHECKING

from traffic_duplicator.proxy.pair import APP_CONNECT_PATIENCE, APP_CONNECT_RETRY_DELAY, Pair
from traffic_duplicator.proxy.relay import AdoptedSide

if TYPE_CHECKING:
    from traffic_duplicator.proxy.poller import Poller

EDGE = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
OUT = select.EPOLLOUT
FAILED = select.EPOLLERR | select.EPOLLHUP
CLOSED = select.EPOLLRDHUP  # the peer's FIN has arrived: every byte before it is queued
END = CLOSED | FAILED  # the peer closed, or the socket failed: read to the end
READABLE = select.EPOLLIN | END
READ_SIZE = 65536
# Every recv and send is non-blocking by this flag: the accepted client socket stays in
# blocking mode, which saves the ioctl(FIONBIO) that setblocking(False) costs per
# connection (CPython's accept4 takes no SOCK_NONBLOCK).
DONTWAIT = socket.MSG_DONTWAIT
# The app socket's TCP_NODELAY. Nagle's algorithm holds a small write back only while an
# earlier one is unacknowledged, so the first write to the app (nearly always a whole
# request) leaves at once without the option; it is set before a second write. That saves
# a setsockopt per `Connection: close` request.
UNWRITTEN = 0
WRITTEN = 1  # one write so far, Nagle's algorithm still on
NODELAY = 2
# Reads per side per wake-up (1 MiB) before other connections get their turn.
READS_PER_EVENT = 16

Pending = bytes | memoryview


class RawPair(Pair):
    """One client socket and its app socket on the poller (module docstring)."""

    __slots__ = (
        "afd",
        "app",
        "app_closing",
        "cfd",
        "client",
        "client_closing",
        "deadline",
        "ending",
        "nagle",
        "poller",
        "retry",
        "to_app",
        "to_client",
    )

    def __init__(self, poller: Poller, client: socket.SocketType) -> None:
        super().__init__(poller.context)
        self.poller = poller
        self.client = client
        self.cfd = client.fileno()
        self.app: socket.SocketType | None = None
        self.afd = -1
        self.to_app: Pending | None = None  # read from the client, not yet sent
        self.to_client: Pending | None = None
        self.client_closing = False  # close the client once `to_client` is sent
        self.app_closing = False
        self.ending = False  # closing: neither side is read any more
        self.retry: asyncio.TimerHandle | None = None
        self.deadline = 0.0  # set at the first refusal
        self.nagle = UNWRITTEN  # the app socket's TCP_NODELAY, set before a second write

    def start(self, peer: object) -> None:
        """Counted as open (`peer`: the client's address), then connect to the app."""
        self._opened(peer)
        self._connect()

    # ---- the app connection ---------------------------------------------------------

    def _connect(self) -> None:
        self.retry = None
        if self.ending:
            return
        poller = self.poller
        try:
            # The C socket type, as for accepted sockets (poller.Listener).
            app = socket.SocketType(poller.app_family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        except OSError as exc:  # out of file descriptors
            self._connect_error(exc)
            return
        code = app.connect_ex(poller.app_address)
        if code not in (0, errno.EINPROGRESS):
            app.close()
            self._connect_error(OSError(code, os.strerror(code)))
            return
        self.app = app
        self.afd = app.fileno()
        poller.add(self.afd, self, EDGE)  # EPOLLOUT says connected, EPOLLERR refused

    def _connect_error(self, exc: OSError) -> None:
        loop = self.context.loop
        if not self.deadline:
            self.deadline = loop.time() + APP_CONNECT_PATIENCE
        if self._connect_failed(exc, self.deadline):
            self.retry = loop.call_later(
                APP_CONNECT_RETRY_DELAY, self.poller.guard, self, self._connect
            )
        else:
            self._close_client(now=True)

    def _app_connecting(self, events: int) -> None:
        app = self.app
        assert app is not None
        if events & FAILED:
            code = app.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or errno.ECONNREFUSED
            self._drop_app()
            self._connect_error(OSError(code, os.strerror(code)))
        elif events & OUT:
            self._app_up()
            # The request has nearly always arrived by now: read it before registering
            # the client, so that no event is queued for bytes already read (a wake-up
            # less per connection); bytes arriving after the read raise the ADD's event.
            self._read(from_client=True, to_end=0)
            if not self.closed:
                self.poller.add(self.cfd, self, EDGE)  # the client is read from now on
            # The app spoke (or closed) at once: this edge is the only one to say so.
            if events & READABLE and self.to_client is None and not self.ending:
                self._read(from_client=False, to_end=events & END)

    # ---- events ---------------------------------------------------------------------

    def ready(self, fd: int, events: int) -> None:
        """The poller's callback: `events` (EPOLL* bits) happened on `fd`."""
        if fd == self.cfd:
            if events & OUT and self.to_client is not None:
                self._flush(to_app=False)
            if events & READABLE and self.to_app is None and not (self.eof or self.ending):
                if self.framer.requests and not events & END and self._idle_between():
                    self._hand_over()
                    return
                self._read(from_client=True, to_end=events & END)
        elif not self.app_ready:
            self._app_connecting(events)
        else:
            if events & OUT and self.to_app is not None:
                self._flush(to_app=True)
            if events & READABLE and self.to_client is None and not self.ending:
                self._read(from_client=False, to_end=events & END)

    def _idle_between(self) -> bool:
        """Between two keep-alive requests: every response complete, nothing pending."""
        return self.to_client is None and not self.draining and self.idle()

    def _hand_over(self) -> None:
        """A later request on a keep-alive connection: the protocols core relays it.

        This core saves its system calls and Python on a connection's set-up and first
        exchange; asyncio's transports (uvloop's in C) relay a long-lived connection's
        requests with fewer wake-ups (no second epoll to ask, no Python per event), so a
        connection that carries a second request moves to them, once: two
        `epoll_ctl` DELs and two transports. The bytes that raised this event wait in
        the kernel for the client transport's first read.
        """
        app = self.app
        assert app is not None
        # asyncio's transports would not set TCP_NODELAY on this socket (protocol 0);
        # both loops make the sockets non-blocking themselves.
        self._set_nodelay()
        poller = self.poller
        poller.remove(self.cfd)
        poller.remove(self.afd)
        AdoptedSide.take_over(self, self.client, app)
        self.app = None
        self.ending = True  # inert: the sockets are the new pair's
        self.closed = True

    def fail(self, exc: BaseException) -> None:
        """A bug while handling this pair (the poller logged it): close it now."""
        self.abort()

    def _read(self, from_client: bool, to_end: int) -> None:
        """Relay what `from_client`'s side has, up to READS_PER_EVENT reads (see the
        module docstring for when a short read ends it)."""
        src = self.client if from_client else self.app
        feed = self._client_bytes if from_client else self._app_bytes
        assert src is not None
        # The peer's FIN came with this event (and no error): once a read comes back
        # short, everything before the FIN has been read and the next read would return
        # the EOF, so it is not made.
        closed = to_end & CLOSED and not to_end & FAILED
        for _ in range(READS_PER_EVENT):
            try:
                data = src.recv(READ_SIZE, DONTWAIT)
            except BlockingIOError:
                return
            except OSError as exc:
                self._broken(client_side=from_client, exc=exc)
                return
            if not data:
                self._ended(from_client)
                return
            short = len(data) < READ_SIZE
            if closed and short and not from_client:
                self._app_closed_after(data)
                return
            if self._send(to_app=from_client, data=data):  # else it failed: ending
                feed(data)  # after the bytes went on: the tap and tracker never delay them
            if self.ending or (self.to_app if from_client else self.to_client) is not None:
                return
            if short and (closed or not to_end):
                if closed:
                    self._ended(from_client)
                return
        # Not done yet: the rest later, after other connections had their turn.
        self.poller.soon(self, self.cfd if from_client else self.afd, READABLE)

    def _app_closed_after(self, data: bytes) -> None:
        """The app's last bytes: its FIN came with them, so both sides close now."""
        if self._send(to_app=False, data=data):
            self._app_last_bytes(data)
            self._ended(False)

    def _send(self, to_app: bool, data: Pending) -> bool:
        """Send `data`, keeping what does not fit as the pending buffer; False if broken."""
        if to_app:
            dst = self.app
            if self.nagle != NODELAY:
                self._before_second_write()
        else:
            dst = self.client
        assert dst is not None
        try:
            sent = dst.send(data, DONTWAIT)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._broken(client_side=not to_app, exc=exc)
            return False
        if sent < len(data):
            rest = memoryview(data)[sent:]
            if to_app:
                self.to_app = rest
            else:
                self.to_client = rest
        return True

    def _flush(self, to_app: bool) -> None:
        """Send the pending buffer; once it is all sent, read its source again."""
        data = self.to_app if to_app else self.to_client
        assert data is not None
        if to_app:
            self.to_app = None
        else:
            self.to_client = None
        # What does not fit becomes the pending buffer again.
        if self._send(to_app, data) and (self.to_app if to_app else self.to_client) is None:
            self._flushed(to_app)

    def _before_second_write(self) -> None:
        """Called before each write to the app until TCP_NODELAY is set (see NODELAY):
        the first passes, the second sets it, so a request body written in several
        parts never waits for the app's delayed ACK."""
        if self.nagle == UNWRITTEN:
            self.nagle = WRITTEN
        else:
            self._set_nodelay()

    def _set_nodelay(self) -> None:
        app = self.app
        if self.nagle != NODELAY and app is not None:
            self.nagle = NODELAY
            try:
                app.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass  # a socket that failed: the write that follows says so

    def _flushed(self, to_app: bool) -> None:
        if to_app:
            if self.app_closing:
                self._close_app(now=True)
            elif self.eof:
                self._shutdown(self.app)
            elif not self.ending:
                self._read(from_client=True, to_end=END)  # no new edge will say so
        elif self.client_closing:
            self._close_client(now=True)
        elif self.lingering is not None:
            self._shutdown(self.client)
        elif not self.ending:
            self._read(from_client=False, to_end=END)

    # ---- ends -----------------------------------------------------------------------

    def _ended(self, client_side: bool) -> None:
        """A side sent its EOF."""
        if client_side:
            self._client_eof()
        elif not self._app_eof():  # else the pair lingers
            self.close()  # flush to the client, then close it

    def _eof_to_app(self) -> None:
        if self.to_app is None:
            self._shutdown(self.app)  # else once what is pending is sent (_flushed)

    def _eof_to_client(self) -> None:
        if self.to_client is None:
            self._shutdown(self.client)  # else once what is pending is sent (_flushed)

    @staticmethod
    def _shutdown(sock: socket.SocketType | None) -> None:
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # it is gone: its own event says so

    def _broken(self, client_side: bool, exc: OSError) -> None:
        """A side failed: it closes now, the other after what is pending to it."""
        self.ending = True
        if client_side:
            self.to_client = None
            self._close_client(now=True, exc=exc)
        else:
            self.to_app = None
            self._close_app(now=True)
            self._close_client(now=False)

    def close(self) -> None:
        """Close both sides after flushing what each has pending."""
        self.ending = True
        self._close_client(now=False)
        self._close_app(now=False)

    def abort(self) -> None:
        """Close both sides now (the drain timeout has passed, or a bug)."""
        self.ending = True
        self.to_app = self.to_client = None
        self._close_client(now=True)
        if self.app is not None:  # the client was gone already, the app still flushing
            self._drop_app()

    def _close_client(self, now: bool, exc: BaseException | None = None) -> None:
        if self.closed:
            return
        if not now and self.to_client is not None:
            self.client_closing = True
            return
        self.ending = True
        self.to_client = None
        self.poller.forget(self.cfd)
        self.client.close()
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None
        try:
            self._lost(exc)
        finally:  # even after a bug in the tap: the app socket must not leak
            self._close_app(now=False)  # what the client sent still reaches the app

    def _close_app(self, now: bool) -> None:
        if self.app is None:
            return
        if not now and self.to_app is not None:
            self.app_closing = True
            return
        self._drop_app()

    def _drop_app(self) -> None:
        app = self.app
        assert app is not None
        self.poller.forget(self.afd)
        app.close()
        self.app = None
        self.to_app = None
