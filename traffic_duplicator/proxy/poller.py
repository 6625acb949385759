"""The `epoll` core: one `select.epoll` per proxy process, woken by the asyncio loop.

The epoll's own file descriptor is registered once with the running loop
(`loop.add_reader`, on asyncio's selector loop and on uvloop alike). When it is readable,
`Poller` takes up to MAX_EVENTS events without blocking and hands each to the object
registered for its descriptor: the `Listener` (level-triggered, so a backlog longer than
one batch is taken at the next wake-up) or a `rawpair.RawPair` (edge-triggered). Mirror
connections, timers, signals and the counters stay on the asyncio loop, unchanged.

Accepting runs after the batch's other events: a pair closed in this batch frees its
descriptor numbers, and an event of the same batch must not reach a new pair that reused
one. A bug (an unexpected exception) in one pair is logged, rate-limited, and closes that
pair only; the poller and the other connections go on.

Linux only (`select.epoll`); elsewhere, or with TRAFFIC_DUPLICATOR_EPOLL=0, the server
runs the `protocols` core (relay.py). See rawpair.py for why and what it costs.
"""

from __future__ import annotations

import asyncio
import errno
import select
import socket
from collections.abc import Callable
from typing import Any, Protocol

from traffic_duplicator.proxy.pair import RelayContext, log_fields
from traffic_duplicator.proxy.rawpair import RawPair

MAX_EVENTS = 256
ACCEPT_BATCH = 64  # connections accepted per wake-up; the rest at the next one
# Out of file descriptors (or memory): accepting pauses this long instead of spinning.
ACCEPT_PAUSE = 1.0
# accept() errors that concern one connection only (already gone): accepting goes on.
_TRANSIENT = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})


class Polled(Protocol):
    """What the poller calls for a registered descriptor."""

    def ready(self, fd: int, events: int) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


class Poller:
    """The process's epoll, its registrations, and how the loop wakes it."""

    def __init__(self, context: RelayContext) -> None:
        self.context = context
        self.loop = context.loop
        host = context.app_host
        self.app_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.app_address = (host, context.app_port)
        self.epoll = select.epoll()
        self.owners: dict[int, Polled] = {}
        self.listener: Listener | None = None
        self.loop.add_reader(self.epoll.fileno(), self._wake)

    def add(self, fd: int, owner: Polled, events: int) -> None:
        self.epoll.register(fd, events)
        self.owners[fd] = owner

    def forget(self, fd: int) -> None:
        """Before `fd` closes (closing it removes it from the epoll: no syscall here)."""
        self.owners.pop(fd, None)

    def remove(self, fd: int) -> None:
        """`fd` leaves the epoll but stays open (it is handed over to a transport)."""
        self.owners.pop(fd, None)
        self.epoll.unregister(fd)

    def _wake(self) -> None:
        owners = self.owners
        listener = self.listener
        accept = False
        for fd, events in self.epoll.poll(0, MAX_EVENTS):
            owner = owners.get(fd)
            if owner is None:
                continue
            if owner is listener:
                accept = True
                continue
            try:
                owner.ready(fd, events)
            except Exception as exc:
                self.failed(owner, exc)
        if accept and listener is not None:
            listener.accept()

    def soon(self, owner: Polled, fd: int, events: int) -> None:
        """Hand `owner` these `events` again at the next loop iteration."""
        self.loop.call_soon(self._again, owner, fd, events)

    def _again(self, owner: Polled, fd: int, events: int) -> None:
        if self.owners.get(fd) is owner:  # not closed meanwhile
            self.guard(owner, owner.ready, fd, events)

    def guard(self, owner: Polled, callback: Callable[..., object], *args: object) -> None:
        """Run a callback of `owner`'s (a timer's), closing only `owner` if it fails."""
        try:
            callback(*args)
        except Exception as exc:
            self.failed(owner, exc)

    def failed(self, owner: Polled, exc: Exception) -> None:
        self.context.errors.event("relay_bug", at="relay_bug", **log_fields(exc))
        try:
            owner.fail(exc)
        except Exception:
            pass  # logged above; the poller must go on

    def close(self) -> None:
        """At the very end: the loop stops watching the epoll, and it closes."""
        self.loop.remove_reader(self.epoll.fileno())
        self.epoll.close()
        self.owners.clear()


class Listener:
    """The listening socket on the poller: accepts in batches, a RawPair for each."""

    def __init__(self, sock: socket.socket, poller: Poller) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        # socket.socket.accept() wraps CPython's accept in Python (its family and type
        # turned into enums, a Python __init__), about 4 % of a `Connection: close`
        # request's CPU here: the C method and the C socket type do without.
        self._accept: Callable[[], tuple[int, Any]] = getattr(sock, "_accept")  # noqa: B009
        self._kind = (int(sock.family), int(sock.type), sock.proto)
        self.poller = poller
        self.paused: asyncio.TimerHandle | None = None
        poller.listener = self
        poller.add(self.fd, self, select.EPOLLIN)  # level-triggered

    def accept(self) -> None:
        accept = self._accept
        family, kind, proto = self._kind
        poller = self.poller
        # Accepted sockets stay in blocking mode (rawpair passes MSG_DONTWAIT), unless a
        # default timeout (socket.setdefaulttimeout) would make CPython wait inside recv
        # and send: then they are made non-blocking.
        nonblocking = socket.getdefaulttimeout() is not None
        for _ in range(ACCEPT_BATCH):
            try:
                fd, peer = accept()
                client = socket.SocketType(family, kind, proto, fd)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno not in _TRANSIENT:
                    self._pause(exc)
                    return
                continue
            try:
                if nonblocking:
                    client.setblocking(False)
                pair = RawPair(poller, client)
            except Exception as exc:  # a bug: this connection only
                client.close()
                poller.context.errors.event("relay_bug", at="relay_bug", **log_fields(exc))
                continue
            poller.guard(pair, pair.start, peer)

    def _pause(self, exc: OSError) -> None:
        """Out of descriptors: stop accepting for ACCEPT_PAUSE (asyncio does the same)."""
        self.poller.context.errors.event(
            "accept", at="accept_error", error=exc.strerror or type(exc).__name__
        )
        self.poller.epoll.modify(self.fd, 0)
        self.paused = self.poller.loop.call_later(ACCEPT_PAUSE, self._resume)

    def _resume(self) -> None:
        self.paused = None
        self.poller.epoll.modify(self.fd, select.EPOLLIN)

    def ready(self, fd: int, events: int) -> None:
        self.accept()

    def fail(self, exc: BaseException) -> None:
        pass  # accept() handles its own errors

    def close(self) -> None:
        """Stop accepting: the listening socket leaves the poller and closes."""
        if self.paused is not None:
            self.paused.cancel()
        self.poller.forget(self.fd)
        self.sock.close()
