"""Command line: em-proxy's flags plus our own long options, turned into a frozen ProxyConfig.

A mistake gives one line naming the flag or value and exit status 2, never a traceback or
argparse's multi-line usage text. `-h`/`--help` and `--version` print and exit 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from traffic_duplicator import __version__
from traffic_duplicator.addr import Address, parse_host_port
from traffic_duplicator.compare.model import DEFAULT_BODY_LIMIT
from traffic_duplicator.compare.settings import parse_body_limit
from traffic_duplicator.errors import AddressError, UserError
from traffic_duplicator.logs import EventLog
from traffic_duplicator.options.values import parse_size  # the one size grammar
from traffic_duplicator.proxy.config import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_MIRROR_BUFFER,
    DEFAULT_MIRROR_CONNECTIONS,
    DEFAULT_PROCESSES,
    DEFAULT_STATS_INTERVAL,
    MAX_PROCESSES,
    PROCESSES_ENV,
    MirrorConfig,
    ProxyConfig,
    TargetKind,
    TargetSpec,
    processes,
    read_epoll,
    read_processes,
)

PROG = "python -m traffic_duplicator.proxy"
GOR_SCHEME = "gor://"
# A bare port in -r/-d means this host.
DEFAULT_CONNECT_HOST = "127.0.0.1"
MAX_MIRROR_CONNECTIONS = 64


class UsageError(UserError):
    """A bad flag or flag value on the proxy's command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")


def parse_address(flag: str, text: str, default_host: str, expected: str) -> Address:
    """`text` as an address, or a UsageError that names the flag and the value."""
    try:
        return parse_host_port(text, default_host)
    except AddressError:
        raise UsageError(
            f"{flag} {text!r} is not {expected} (port 1-65535, IPv6 as [HOST]:PORT)"
        ) from None


def parse_target(text: str) -> TargetSpec:
    """One duplex target: `HOST:PORT` (raw HTTP) or `gor://HOST:PORT` (GoReplay framing)."""
    value = text.strip()
    kind = TargetKind.HTTP
    if value.lower().startswith(GOR_SCHEME):
        kind, value = TargetKind.GOR, value[len(GOR_SCHEME) :]
    elif "://" in value:
        raise UsageError(
            f"-d/--duplex {text!r} has an unknown scheme; write HOST:PORT or gor://HOST:PORT"
        )
    try:
        address = parse_host_port(value, DEFAULT_CONNECT_HOST)
    except AddressError:
        raise UsageError(
            f"-d/--duplex {text!r} is not HOST:PORT or gor://HOST:PORT "
            "(port 1-65535, IPv6 as [HOST]:PORT)"
        ) from None
    return TargetSpec(address, kind)


def parse_targets(values: Sequence[str]) -> tuple[TargetSpec, ...]:
    """All `-d` values, each a comma-separated list; duplicates are refused."""
    targets: list[TargetSpec] = []
    for value in values:
        for item in value.split(","):
            if not item.strip():
                raise UsageError(f"-d/--duplex {value!r} has an empty HOST:PORT")
            target = parse_target(item)
            if target in targets:
                raise UsageError(f"-d/--duplex target {target} is given twice")
            targets.append(target)
    return tuple(targets)


def _build_parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description="Tee proxy: relay each client connection to -r, copy its requests to -d.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "-l",
        "--listen",
        required=True,
        metavar="PORT|HOST:PORT",
        help="where clients connect; a bare PORT listens on every address, IPv6 and IPv4",
    )
    parser.add_argument(
        "-r", "--relay", required=True, metavar="HOST:PORT", help="the app; its answers go back"
    )
    parser.add_argument(
        "-d",
        "--duplex",
        action="append",
        default=[],
        metavar="HOST:PORT[,HOST:PORT...]",
        help="mirror target; gor://HOST:PORT gets GoReplay TCP framing (repeatable)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log each connection opened and closed"
    )
    parser.add_argument(
        "--version", action="version", version=f"{PROG} (traffic-duplicator) {__version__}"
    )
    parser.add_argument(
        "--mirror-buffer",
        default=str(DEFAULT_MIRROR_BUFFER),
        metavar="BYTES",
        help="bytes buffered per target before requests are dropped (default 1m)",
    )
    parser.add_argument(
        "--mirror-connections",
        default=str(DEFAULT_MIRROR_CONNECTIONS),
        metavar="N",
        help=f"persistent connections per target (default {DEFAULT_MIRROR_CONNECTIONS})",
    )
    parser.add_argument(
        "--drain-timeout",
        default=str(DEFAULT_DRAIN_TIMEOUT),
        metavar="SECONDS",
        help="on SIGTERM, how long requests in flight may finish (default 25)",
    )
    parser.add_argument(
        "--stats-interval",
        default=str(DEFAULT_STATS_INTERVAL),
        metavar="SECONDS",
        help="seconds between counter lines, 0 for none but the last (default 60)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also send production's response to each mirrored request to the gor:// "
        "targets, as GoReplay type 2 messages (gor's --input-raw-track-response)",
    )
    parser.add_argument(
        "--compare-body-limit",
        metavar="SIZE",
        help="with --compare, body bytes kept per response; longer bodies travel cut, "
        "with their length and SHA-256 (default 64k, at most 16m)",
    )
    parser.add_argument(
        "--processes",
        default=None,
        metavar="N",
        help=f"processes sharing the port (SO_REUSEPORT), each with its own mirror "
        f"connections; default ${PROCESSES_ENV} or {DEFAULT_PROCESSES}",
    )
    # Internal: a worker started by the first process (proxy/workers.py).
    parser.add_argument("--worker-fds", default=None, help=argparse.SUPPRESS)
    return parser


def _seconds(flag: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise UsageError(f"{flag} {text!r} is not a number of seconds (0 or more)")
    return value


def _compare_body_limit(args: argparse.Namespace, targets: tuple[TargetSpec, ...]) -> int:
    """--compare-body-limit, checked with --compare and the targets it needs."""
    text = args.compare_body_limit
    if args.compare and not any(target.kind is TargetKind.GOR for target in targets):
        raise UsageError(
            "--compare sends production's responses to gor:// targets; "
            "add one with -d gor://HOST:PORT"
        )
    if text is None:
        return DEFAULT_BODY_LIMIT
    if not args.compare:
        raise UsageError("--compare-body-limit needs --compare")
    try:
        return parse_body_limit(text)
    except ValueError as exc:
        raise UsageError(f"--compare-body-limit {exc}") from None


def _processes(flag: str | None) -> int:
    """--processes, else $TRAFFIC_DUPLICATOR_PROXY_PROCESSES, else the default."""
    if flag is None:
        return read_processes(os.environ)
    value = processes(flag)
    if value is None:
        raise UsageError(f"--processes {flag!r} is not a number from 1 to {MAX_PROCESSES}")
    return value


def parse_args(argv: Sequence[str]) -> ProxyConfig:
    """Build the configuration from argv (without the program name); raise UserError."""
    args = _build_parser().parse_args(list(argv))
    listen = parse_address("-l/--listen", args.listen, "", "PORT or HOST:PORT")
    relay = parse_address("-r/--relay", args.relay, DEFAULT_CONNECT_HOST, "HOST:PORT")
    try:
        buffer_bytes = parse_size(args.mirror_buffer)
    except ValueError:
        raise UsageError(
            f"--mirror-buffer {args.mirror_buffer!r} is not a size (e.g. 1048576, 512k, 1m)"
        ) from None
    if buffer_bytes < 1:
        raise UsageError("--mirror-buffer must be at least 1 byte")
    connections = args.mirror_connections.strip()
    if not connections.isdigit() or not 1 <= int(connections) <= MAX_MIRROR_CONNECTIONS:
        raise UsageError(
            f"--mirror-connections {args.mirror_connections!r} is not a number "
            f"from 1 to {MAX_MIRROR_CONNECTIONS}"
        )
    targets = parse_targets(args.duplex)
    return ProxyConfig(
        processes=_processes(args.processes),
        # The epoll core (on, the default) or asyncio protocols (poller.py).
        epoll=read_epoll(os.environ),
        listen=listen,
        relay=relay,
        targets=targets,
        mirror=MirrorConfig(buffer_bytes=buffer_bytes, connections=int(connections)),
        drain_timeout=_seconds("--drain-timeout", args.drain_timeout),
        stats_interval=_seconds("--stats-interval", args.stats_interval),
        verbose=args.verbose,
        compare=args.compare,
        compare_body_limit=_compare_body_limit(args, targets),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run until a signal, return the exit status."""
    log = EventLog(None)
    words = sys.argv[1:] if argv is None else list(argv)
    try:
        config = parse_args(words)
        worker = _build_parser().parse_args(words).worker_fds
        if worker is not None:
            from traffic_duplicator.proxy.workers import run_worker

            return run_worker(config, log, worker)
        from traffic_duplicator.proxy.server import run

        return run(config, log)
    except UserError as exc:
        log.event(at="error", error=str(exc))
        return exc.exit_status
