"""The proxy's configuration: small frozen records built once by `cli`, read everywhere else."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from traffic_duplicator.addr import Address
from traffic_duplicator.compare.model import DEFAULT_BODY_LIMIT

DEFAULT_MIRROR_BUFFER = 1024 * 1024  # bytes buffered per target before whole requests drop
DEFAULT_MIRROR_CONNECTIONS = 4  # persistent connections per target, shared by all clients
DEFAULT_DRAIN_TIMEOUT = 25.0  # inside Heroku's 30 s between SIGTERM and SIGKILL
DEFAULT_STATS_INTERVAL = 60.0
# One process: a dyno's CPUs are shared with the app and the replayer (bench/README.md).
DEFAULT_PROCESSES = 1
MAX_PROCESSES = 16


class TargetKind(enum.Enum):
    """How a duplex target receives requests."""

    HTTP = "http"  # the raw request bytes, as a second HTTP client would send them
    GOR = "gor"  # GoReplay's TCP input framing: header line, request, separator


@dataclass(frozen=True)
class TargetSpec:
    """One `-d` target."""

    address: Address
    kind: TargetKind = TargetKind.HTTP

    def __str__(self) -> str:
        prefix = "gor://" if self.kind is TargetKind.GOR else ""
        return f"{prefix}{self.address}"


@dataclass(frozen=True)
class MirrorConfig:
    """Limits shared by every mirror target."""

    buffer_bytes: int = DEFAULT_MIRROR_BUFFER
    connections: int = DEFAULT_MIRROR_CONNECTIONS


@dataclass(frozen=True)
class ProxyConfig:
    """Everything the server needs to run."""

    listen: Address  # host "" means every interface, dual-stack where the host has IPv6
    relay: Address
    targets: tuple[TargetSpec, ...] = ()
    mirror: MirrorConfig = MirrorConfig()
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    stats_interval: float = DEFAULT_STATS_INTERVAL  # 0 turns the periodic line off
    verbose: bool = False
    # --compare: production's responses go to the gor:// targets (GoReplay type 2).
    compare: bool = False
    compare_body_limit: int = DEFAULT_BODY_LIMIT  # body bytes kept per response
    processes: int = DEFAULT_PROCESSES  # sharing the port with SO_REUSEPORT (workers.py)
    # The epoll core where Linux has it (poller.py); False: asyncio protocols (relay.py).
    epoll: bool = True
