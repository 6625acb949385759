"""Internal hops are loopback only: read the listening sockets of a running wrapper.

The README promises that only $PORT faces out; the app (here bound to 127.0.0.1 itself) and
the replayer listen on loopback. A gor started as `--input-http :PORT` would listen on every
interface, so this reads the kernel's socket tables (/proc/net/tcp and tcp6) for every
socket the wrapper's process tree holds, with the built-in engines and with the fake gor of
tests/fixtures/bin (which runs the built-in replayer on exactly the address it was given).
"""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path

import pytest

from tests.support import wait_until
from tests.wrapper.harness import FIXTURE_BIN, descendants, running_wrapper, write_options

TCP_LISTEN = "0A"  # the state column of /proc/net/tcp (include/net/tcp_states.h)
Listener = tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]


def _socket_inodes(pids: list[int]) -> set[str]:
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # The kernel prints each 32-bit word of the address in host (little-endian) order.
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def listeners(pids: list[int]) -> set[Listener]:
    """(address, port) of every TCP socket in LISTEN held by one of `pids`."""
    inodes = _socket_inodes(pids)
    found: set[Listener] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as handle:
            rows = handle.read().splitlines()[1:]
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == TCP_LISTEN and inode in inodes:
                address, port = local.split(":")
                found.add((_address(address), int(port, 16)))
    return found


def _is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def test_the_kernel_table_is_read_as_written() -> None:
    assert _address("0100007F") == ipaddress.ip_address("127.0.0.1")
    assert _address("00000000000000000000000001000000") == ipaddress.ip_address("::1")
    assert _address("0000000000000000FFFF00000100007F") == ipaddress.ip_address("::ffff:127.0.0.1")


@pytest.mark.parametrize("replayer", ["builtin", "gor-new", "gor-old"])
def test_only_port_listens_beyond_loopback(tmp_path: Path, replayer: str) -> None:
    write_options(tmp_path, "--output-http http://127.0.0.1:9")
    extra = {}
    if replayer != "builtin":
        extra = {
            "TRAFFIC_DUPLICATOR_GOR": str(FIXTURE_BIN / "gor"),
            "FAKE_GOR_VERSION": replayer.removeprefix("gor-"),
        }
    app = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "$PORT"]
    with running_wrapper(tmp_path, app, extra=extra) as wrapper:
        wrapper.wait_serving()
        engine = wrapper.events(at="engine", process="replayer")[0]["engine"]
        assert engine == {"builtin": "builtin", "gor-new": "gor --input-tcp",
                          "gor-old": "gor --input-http"}[replayer]  # fmt: skip

        def held() -> set[Listener]:
            return listeners([wrapper.proc.pid, *descendants(wrapper.proc.pid)])

        # Serving means the proxy and the app are up; the replayer may still be starting.
        wait_until(
            lambda: wrapper.replayer_port in {port for _, port in held()},
            timeout=20.0,
            message=f"the replayer never listened:\n{wrapper.stderr()}",
        )
        found = held()

    outward = {port for address, port in found if not _is_loopback(address)}
    assert outward == {wrapper.port}, found
    loopback = {port for address, port in found if _is_loopback(address)}
    assert {wrapper.app_port, wrapper.replayer_port} <= loopback, found
