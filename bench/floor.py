"""The least a TCP relay built on asyncio protocols does per connection: a reference path.

    python bench/floor.py LISTEN_PORT APP_HOST:APP_PORT [--loop asyncio]

It accepts, connects to the app, copies bytes both ways, and closes each side when the
other closes: no parsing, no mirror, no counters, no flow control, no drain. It is not a
product (it copies nothing anywhere); bench/proxy.py runs it as the `floor` path, on
uvloop when the interpreter has it, so the table shows how much of the built-in proxy's
cost per `Connection: close` request is the event loop's and the interpreter's per
connection, which no change to the proxy's own code can remove.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from typing import cast


class AppSide(asyncio.Protocol):
    def __init__(self, client: ClientSide) -> None:
        self.client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.client.app_connected(cast(asyncio.Transport, transport))

    def data_received(self, data: bytes) -> None:
        client = self.client.transport
        if client is not None:
            client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client.transport is not None:
            self.client.transport.close()


class ClientSide(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, app: tuple[str, int]) -> None:
        self.loop = loop
        self.app_address = app
        self.transport: asyncio.Transport | None = None
        self.app: asyncio.Transport | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.task = self.loop.create_task(self.connect())

    async def connect(self) -> None:
        host, port = self.app_address
        try:
            await self.loop.create_connection(lambda: AppSide(self), host, port)
        except OSError:
            if self.transport is not None:
                self.transport.close()

    def app_connected(self, app: asyncio.Transport) -> None:
        self.app = app
        for data in self.early:
            app.write(data)
        self.early = []

    def data_received(self, data: bytes) -> None:
        if self.app is None:
            self.early.append(data)
        else:
            self.app.write(data)

    def eof_received(self) -> bool:
        if self.app is not None and self.app.can_write_eof():
            self.app.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.app is not None:
            self.app.close()
        else:
            self.task.cancel()


async def serve(port: int, app: tuple[str, int], name: str) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    server = await loop.create_server(lambda: ClientSide(loop, app), sock=sock, backlog=4096)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"at=listening port={port} loop={name}", flush=True)
    await stop.wait()
    server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("app", help="HOST:PORT")
    parser.add_argument("--loop", choices=("auto", "asyncio"), default="auto")
    args = parser.parse_args()
    host, _, app_port = args.app.rpartition(":")
    loop: asyncio.AbstractEventLoop
    name = "asyncio"
    try:
        if args.loop == "asyncio":
            raise ImportError
        import uvloop

        loop, name = uvloop.new_event_loop(), "uvloop"
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(serve(args.port, (host, int(app_port)), name))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
