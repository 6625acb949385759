"""Address parsing, listener binding, and the logfmt/rate-limit helpers."""

from __future__ import annotations

import io
import socket

import pytest

from traffic_duplicator.addr import (
    Address,
    has_ipv6,
    listen_socket,
    parse_host_port,
    parse_port,
    port_is_free,
)
from traffic_duplicator.errors import AddressError, PortInUseError
from traffic_duplicator.logs import EventLog, RateLimitedLog, logfmt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5001", Address("127.0.0.1", 5001)),
        (":5002", Address("", 5002)),
        ("5003", Address("", 5003)),
        ("[::1]:5004", Address("::1", 5004)),
        ("localhost:80", Address("localhost", 80)),
    ],
)
def test_host_port_forms(text: str, expected: Address) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["host:", "host:0", "host:70000", "::1:80", "[::1]80", "x:y"])
def test_bad_host_port_names_the_input(text: str) -> None:
    with pytest.raises(AddressError, match=r"'" + text.replace("[", r"\[").replace("]", r"\]")):
        parse_host_port(text)


def test_bad_port_in_an_address_names_both_once() -> None:
    with pytest.raises(AddressError) as caught:
        parse_host_port("example.com:http")
    assert str(caught.value) == (
        "port 'http' in 'example.com:http' is not a TCP port (a number from 1 to 65535)"
    )


def test_parse_port_names_what_it_is() -> None:
    with pytest.raises(AddressError, match=r"^PORT 'abc' is not a TCP port"):
        parse_port("abc", "PORT")


def test_address_str_brackets_ipv6() -> None:
    assert str(Address("::1", 80)) == "[::1]:80"
    assert str(Address("127.0.0.1", 80)) == "127.0.0.1:80"


def test_port_in_use_is_a_one_line_error_naming_the_port() -> None:
    holder = listen_socket(0, "127.0.0.1")
    try:
        port = holder.getsockname()[1]
        assert not port_is_free(port)
        with pytest.raises(PortInUseError, match=f"port {port} is already in use"):
            listen_socket(port, "127.0.0.1")
    finally:
        holder.close()
    assert port_is_free(port)


def test_default_bind_is_dual_stack_when_the_host_has_ipv6() -> None:
    sock = listen_socket(0)
    try:
        port = sock.getsockname()[1]
        if has_ipv6():
            assert sock.family == socket.AF_INET6
            with socket.create_connection(("::1", port), timeout=2):
                pass
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        sock.close()


def test_logfmt_quotes_only_what_needs_it() -> None:
    line = logfmt(at="start", process="app", pid=12, port=5001, note="two words", ok=True)
    assert line == 'at=start process=app pid=12 port=5001 note="two words" ok=true'
    assert logfmt(x='a"b', y=1.5, z=None) == 'x="a\\"b" y=1.5 z='


def test_event_log_prefixes_the_source() -> None:
    out = io.StringIO()
    EventLog("traffic_duplicator", out).event(at="exit", status=3)
    assert out.getvalue() == "traffic_duplicator at=exit status=3\n"


def test_rate_limited_log_lets_one_line_through_per_interval_and_counts_the_rest() -> None:
    now = [100.0]
    out = io.StringIO()
    limited = RateLimitedLog(EventLog(None, out), interval=5.0, clock=lambda: now[0])
    assert limited.event("t1", at="error", target="t1")
    assert not limited.event("t1", at="error", target="t1")
    assert limited.event("t2", at="error", target="t2")  # another key is independent
    now[0] += 5.0
    assert limited.event("t1", at="error", target="t1")
    assert out.getvalue().splitlines() == [
        "at=error target=t1",
        "at=error target=t2",
        "at=error target=t1 suppressed=1",
    ]
