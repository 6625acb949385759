"""The app connection and the listening socket: TCP_NODELAY on every relayed socket, and
the connector's errors, on asyncio and (when importable) uvloop."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable

import pytest

from tests.support import free_port
from traffic_duplicator.addr import Address
from traffic_duplicator.proxy.config import ProxyConfig
from traffic_duplicator.proxy.connect import AppConnector, address_family
from traffic_duplicator.proxy.server import bind

NewLoop = Callable[[], asyncio.AbstractEventLoop]


def _loops() -> list[NewLoop]:
    factories: list[NewLoop] = [asyncio.new_event_loop]
    try:
        import uvloop
    except ImportError:
        pass
    else:
        factories.append(uvloop.new_event_loop)
    return factories


def _nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@pytest.mark.parametrize("new_loop", _loops(), ids=lambda f: f.__module__.split(".")[0])
def test_the_app_connection_has_nodelay(new_loop: NewLoop) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        made: asyncio.Future[asyncio.BaseTransport] = loop.create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                made.set_result(transport)

        await AppConnector(loop, "127.0.0.1", port).connect(Probe)
        transport = await made
        value = _nodelay(transport.get_extra_info("socket"))
        transport.close()
        server.close()
        return value

    loop = new_loop()
    try:
        assert loop.run_until_complete(main()) == 1
    finally:
        loop.close()


@pytest.mark.parametrize("new_loop", _loops(), ids=lambda f: f.__module__.split(".")[0])
def test_a_refused_connect_raises_oserror(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        try:
            await AppConnector(loop, "127.0.0.1", free_port()).connect(asyncio.Protocol)
        except OSError as exc:
            return exc.errno or 0
        return 0

    loop = new_loop()
    try:
        assert loop.run_until_complete(main()) == errno.ECONNREFUSED
    finally:
        loop.close()


def test_accepted_client_sockets_inherit_nodelay_from_the_listener() -> None:
    config = ProxyConfig(listen=Address("127.0.0.1", free_port()), relay=Address("127.0.0.1", 1))
    with bind(config) as listener:
        listener.setblocking(True)
        with socket.create_connection(("127.0.0.1", config.listen.port)):
            accepted, _ = listener.accept()
            with accepted:
                assert _nodelay(accepted) == 1


def test_address_family() -> None:
    assert address_family("127.0.0.1") == socket.AF_INET
    assert address_family("::1") == socket.AF_INET6
    assert address_family("app.internal") is None
