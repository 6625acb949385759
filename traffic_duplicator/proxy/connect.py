"""Opening the app connection for one client: the cheapest way each event loop allows.

Measured per connection (bench/README.md, "Per connection"):

- uvloop: `loop.create_connection(host, port)` does the socket, the non-blocking connect
  and the transport in C; every other public path (sock_connect, then a transport over the
  connected socket) costs about twice its CPU.
- asyncio: `create_connection(host, port)` spends much of its time in Python around the
  connect (address resolution, a list of attempts, a second setblocking). A socket made
  non-blocking at creation (SOCK_NONBLOCK: no ioctl), `connect()` called directly and one
  wait for writability, then `create_connection(sock=...)` for the transport, costs about
  a sixth less CPU per connection (user and system).

The host is an IP literal (the server resolves names once at start); a name that did not
resolve then is left to `create_connection`, which looks it up each time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Callable
from typing import Any

# Python sockets are close-on-exec already; this makes them non-blocking from the start.
_NONBLOCKING_STREAM = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)


def address_family(host: str) -> socket.AddressFamily | None:
    """AF_INET or AF_INET6 for an IP literal, None for a name."""
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        return None
    return socket.AF_INET6 if version == 6 else socket.AF_INET


class AppConnector:
    """Connects to the app, `create_connection`'s contract: raises OSError on failure."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        family = address_family(host)
        uvloop = type(loop).__module__.startswith("uvloop")
        # The direct path needs an IP literal, and SOCK_NONBLOCK (Linux, the BSDs).
        self._family = None if uvloop or not _NONBLOCKING_STREAM & ~socket.SOCK_STREAM else family

    async def connect(self, factory: Callable[[], asyncio.Protocol]) -> None:
        if self._family is None:
            await self.loop.create_connection(factory, self.host, self.port)
            return
        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so.
        sock = socket.socket(self._family, _NONBLOCKING_STREAM, socket.IPPROTO_TCP)
        try:
            try:
                sock.connect((self.host, self.port))
            except BlockingIOError:  # EINPROGRESS: the handshake is under way
                await self._writable(sock)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    raise OSError(error, os.strerror(error)) from None
            await self.loop.create_connection(factory, sock=sock)
        except BaseException:
            sock.close()
            raise

    async def _writable(self, sock: socket.socket) -> None:
        loop = self.loop
        fd = sock.fileno()
        waiter: asyncio.Future[None] = loop.create_future()
        loop.add_writer(fd, _wake, waiter)
        try:
            await waiter
        finally:
            loop.remove_writer(fd)


def _wake(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():  # a cancelled connect leaves a done waiter behind
        waiter.set_result(None)
