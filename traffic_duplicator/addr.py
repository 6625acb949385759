"""Addresses: parsing HOST:PORT as em-proxy and gor write them, and binding listeners."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from traffic_duplicator.errors import AddressError, PortInUseError

MAX_PORT = 65535
DEFAULT_BACKLOG = 1024


@dataclass(frozen=True)
class Address:
    """A TCP endpoint. `host` is empty for "every interface"."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_port(text: str, what: str = "port", within: str = "") -> int:
    """A TCP port number from 1 to 65535, or an AddressError naming `what` (and `within`)."""
    stripped = text.strip()
    if not stripped.isdigit() or not 0 < int(stripped) <= MAX_PORT:
        where = f" in {within!r}" if within else ""
        raise AddressError(
            f"{what} {text!r}{where} is not a TCP port (a number from 1 to {MAX_PORT})"
        )
    return int(stripped)


def parse_host_port(text: str, default_host: str = "") -> Address:
    """Parse `HOST:PORT`, `[IPv6]:PORT`, `:PORT` or a bare `PORT`."""
    value = text.strip()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise AddressError(f"address {text!r} is not [IPv6]:PORT")
        return Address(host, parse_port(rest[1:], within=text))
    if ":" not in value:
        return Address(default_host, parse_port(value, within=text))
    host, _, port = value.rpartition(":")
    if ":" in host:
        raise AddressError(f"address {text!r} has an IPv6 host; write it as [HOST]:PORT")
    return Address(host or default_host, parse_port(port, within=text))


def has_ipv6() -> bool:
    """Whether this host can bind an IPv6 socket at all."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def listen_socket(
    port: int, host: str = "", backlog: int = DEFAULT_BACKLOG, *, reuse_port: bool = False
) -> socket.socket:
    """A listening, non-blocking socket.

    With no host it binds dual-stack `[::]` (IPv4 arrives v4-mapped) where the host has
    IPv6, because Heroku's Fir generation routes to `[::]:$PORT`; else `0.0.0.0`.
    `reuse_port`: SO_REUSEPORT, so that several processes each bind their own socket to
    the port and the kernel spreads new connections between them (Linux >= 3.9).
    """
    if host:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        bind_host = host
    elif has_ipv6():
        family, bind_host = socket.AF_INET6, "::"
    else:
        family, bind_host = socket.AF_INET, "0.0.0.0"
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and not host:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((bind_host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} is already in use; stop what listens on it or choose another port"
            ) from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise AddressError(f"cannot listen on {bind_host}:{port}: {exc.strerror}") from None
        raise
    return sock


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a listener could bind `host:port` right now."""
    try:
        listen_socket(port, host).close()
    except (PortInUseError, AddressError):
        return False
    return True
