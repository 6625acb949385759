"""Command line: em-proxy's flags, our long options, and one-line errors."""

from __future__ import annotations

import pytest

from tests.support import free_port, run_module
from traffic_duplicator import __version__
from traffic_duplicator.addr import Address
from traffic_duplicator.errors import UserError
from traffic_duplicator.options.values import parse_size
from traffic_duplicator.proxy.cli import parse_args
from traffic_duplicator.proxy.config import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_MIRROR_BUFFER,
    DEFAULT_MIRROR_CONNECTIONS,
    DEFAULT_STATS_INTERVAL,
    TargetKind,
    TargetSpec,
)


def test_em_proxy_command_line_as_the_wrapper_writes_it() -> None:
    config = parse_args(["-l", "5000", "-r", "127.0.0.1:5001", "-d", "127.0.0.1:5002"])
    assert config.listen == Address("", 5000)  # every interface, dual-stack
    assert config.relay == Address("127.0.0.1", 5001)
    assert config.targets == (TargetSpec(Address("127.0.0.1", 5002), TargetKind.HTTP),)
    assert config.mirror.buffer_bytes == DEFAULT_MIRROR_BUFFER == 1 << 20
    assert config.mirror.connections == DEFAULT_MIRROR_CONNECTIONS
    assert config.drain_timeout == DEFAULT_DRAIN_TIMEOUT == 25
    assert config.stats_interval == DEFAULT_STATS_INTERVAL == 60
    assert not config.verbose


def test_long_flags_listen_host_port_and_verbose() -> None:
    config = parse_args(
        ["--listen", "0.0.0.0:8080", "--relay", "localhost:8081", "--duplex", "[::1]:9", "-v"]
    )
    assert config.listen == Address("0.0.0.0", 8080)
    assert config.relay == Address("localhost", 8081)
    assert config.targets[0].address == Address("::1", 9)
    assert config.verbose


def test_duplex_takes_comma_lists_repeats_and_gor_targets() -> None:
    config = parse_args(
        ["-l", "1", "-r", "h:2", "-d", "a:3,gor://b:4", "-d", "GOR://c:5", "-d", "6"]
    )
    assert [str(target) for target in config.targets] == [
        "a:3",
        "gor://b:4",
        "gor://c:5",
        "127.0.0.1:6",
    ]
    assert [target.kind for target in config.targets] == [
        TargetKind.HTTP,
        TargetKind.GOR,
        TargetKind.GOR,
        TargetKind.HTTP,
    ]


def test_own_options() -> None:
    config = parse_args(
        [
            "-l=1",
            "-r=h:2",
            "--mirror-buffer=512k",
            "--mirror-connections=2",
            "--drain-timeout=3.5",
            "--stats-interval=0",
        ]
    )
    assert config.mirror.buffer_bytes == 512 * 1024
    assert config.mirror.connections == 2
    assert config.drain_timeout == 3.5
    assert config.stats_interval == 0


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1 << 20),
        ("512k", 512 << 10),
        ("1m", 1 << 20),
        ("1MiB", 1 << 20),
        ("2G", 2 << 30),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["-r", "h:2"], "-l/--listen"),
        (["-l", "1"], "-r/--relay"),
        (["-l", "1", "-r", "h:2", "--bogus"], "--bogus"),
        (["-l", "70000", "-r", "h:2"], "'70000'"),
        (["-l", "1", "-r", "nohost"], "'nohost'"),
        (["-l", "1", "-r", "h:2", "-d", "x:y"], "'x:y'"),
        (["-l", "1", "-r", "h:2", "-d", "a:1,,b:2"], "empty"),
        (["-l", "1", "-r", "h:2", "-d", "http://a:1"], "unknown scheme"),
        (["-l", "1", "-r", "h:2", "-d", "a:1,a:1"], "twice"),
        (["-l", "1", "-r", "h:2", "--mirror-buffer", "lots"], "--mirror-buffer"),
        (["-l", "1", "-r", "h:2", "--mirror-buffer", "0"], "--mirror-buffer"),
        (["-l", "1", "-r", "h:2", "--mirror-connections", "0"], "--mirror-connections"),
        (["-l", "1", "-r", "h:2", "--drain-timeout", "soon"], "--drain-timeout"),
        (["-l", "1", "-r", "h:2", "--stats-interval", "-5"], "--stats-interval"),
    ],
)
def test_mistakes_name_the_flag_or_value_in_one_line(argv: list[str], named: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_args(argv)
    message = str(caught.value)
    assert named in message
    assert "\n" not in message
    assert caught.value.exit_status == 2


@pytest.mark.parametrize("word", ["-h", "--help"])
def test_help_prints_usage_and_starts_nothing(word: str) -> None:
    port = free_port()
    result = run_module(
        "traffic_duplicator.proxy", word, "-l", f"127.0.0.1:{port}", "-r", "127.0.0.1:9"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m traffic_duplicator.proxy ")
    assert "--drain-timeout SECONDS" in result.stdout
    assert result.stderr == ""


def test_version_prints_the_package_version() -> None:
    result = run_module("traffic_duplicator.proxy", "--version")
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout == f"python -m traffic_duplicator.proxy (traffic-duplicator) {__version__}\n"
    )
