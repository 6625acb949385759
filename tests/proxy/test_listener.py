"""The listening socket: TCP_NODELAY set once there reaches every accepted client socket,
which asyncio's transports would otherwise leave without it."""

from __future__ import annotations

import socket

from tests.support import free_port
from traffic_duplicator.addr import Address
from traffic_duplicator.proxy.config import ProxyConfig
from traffic_duplicator.proxy.server import bind


def test_accepted_client_sockets_inherit_nodelay_from_the_listener() -> None:
    config = ProxyConfig(listen=Address("127.0.0.1", free_port()), relay=Address("127.0.0.1", 1))
    with bind(config) as listener:
        listener.setblocking(True)
        with socket.create_connection(("127.0.0.1", config.listen.port)):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.proto == 0  # so asyncio's transport would not set it
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
