"""Looking at a port from outside: does something accept there, does anything listen there."""

from __future__ import annotations

import errno
import socket

from traffic_duplicator.wrapper.ports import LOOPBACK

PROBE_TIMEOUT = 0.25


def accepts(port: int, host: str = LOOPBACK, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether something accepts TCP connections on host:port right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def has_listener(port: int, host: str = LOOPBACK) -> bool:
    """Whether a listening socket holds host:port, without connecting to it.

    We try to bind the port with SO_REUSEADDR, which on Linux only a listener (or a socket
    bound without SO_REUSEADDR) refuses: the connections a server still drains do not. The
    socket is never listened on, so no client can land on it. Microseconds, unlike reading
    /proc/net/tcp, which takes a noticeable time on a host with many connections.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False
