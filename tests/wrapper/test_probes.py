"""Port probes on real sockets."""

from __future__ import annotations

import socket

from tests.support import free_port
from traffic_duplicator.addr import listen_socket
from traffic_duplicator.wrapper.probes import accepts, has_listener


def test_a_dual_stack_listener_is_seen_on_loopback_and_its_drained_connections_are_not() -> None:
    listener = listen_socket(0)  # [::] as the proxy binds, or 0.0.0.0
    port = listener.getsockname()[1]
    listener.setblocking(True)
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    try:
        assert has_listener(port)
        assert accepts(port)
        # A server that stopped accepting but still drains a connection no longer listens.
        listener.close()
        assert not has_listener(port)
        assert not accepts(port)
    finally:
        served.close()
        client.close()


def test_a_free_port_has_no_listener() -> None:
    port = free_port()
    assert not has_listener(port)
    assert not accepts(port)
