"""The proxy's configuration: small frozen records built once by `cli`, read everywhere else.

Its two config vars are read here and nowhere else: the proxy's command line, the wrapper
(before anything starts, when the built-in proxy is the one that will run) and the build's
check (`wrapper.explain`) all call `read_environment`, so they accept and refuse the same
values with the same line:
- `TRAFFIC_DUPLICATOR_PROXY_PROCESSES`: a whole number from 1 to 16 (unset: 1).
- `TRAFFIC_DUPLICATOR_EPOLL`: a switch (`configvars.switch`, unset: on).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from traffic_duplicator import configvars
from traffic_duplicator.addr import Address
from traffic_duplicator.compare.model import DEFAULT_BODY_LIMIT
from traffic_duplicator.errors import UserError

DEFAULT_MIRROR_BUFFER = 1024 * 1024  # bytes buffered per target before whole requests drop
DEFAULT_MIRROR_CONNECTIONS = 4  # persistent connections per target, shared by all clients
DEFAULT_DRAIN_TIMEOUT = 25.0  # inside Heroku's 30 s between SIGTERM and SIGKILL
DEFAULT_STATS_INTERVAL = 60.0
# One process: a dyno's CPUs are shared with the app and the replayer (bench/README.md).
DEFAULT_PROCESSES = 1
MAX_PROCESSES = 16
PROCESSES_ENV = "TRAFFIC_DUPLICATOR_PROXY_PROCESSES"
EPOLL_ENV = "TRAFFIC_DUPLICATOR_EPOLL"


class ProxySettingsError(UserError):
    """A proxy config var (or the flag that stands for it) has a value the proxy cannot use."""


def processes(text: str) -> int | None:
    """A process count from 1 to MAX_PROCESSES written in ASCII digits (blanks around it
    ignored), else None. The one rule for `--processes` and PROXY_PROCESSES."""
    word = text.strip()
    if not (word.isascii() and word.isdigit()) or not 1 <= int(word) <= MAX_PROCESSES:
        return None
    return int(word)


def read_processes(env: Mapping[str, str]) -> int:
    """TRAFFIC_DUPLICATOR_PROXY_PROCESSES: DEFAULT_PROCESSES when unset or blank."""
    raw = env.get(PROCESSES_ENV, "")
    if not raw.strip():
        return DEFAULT_PROCESSES
    value = processes(raw)
    if value is None:
        raise ProxySettingsError(
            f"{PROCESSES_ENV}={raw.strip()!r} is not a number of processes; use a whole number "
            f"from 1 to {MAX_PROCESSES} (unset: {DEFAULT_PROCESSES})"
        )
    return value


def _bad_epoll(raw: str) -> ProxySettingsError:
    return ProxySettingsError(
        f"{EPOLL_ENV}={raw!r} is not understood; use 0, false, no or off to relay on "
        "asyncio protocols (1, true, yes, on or unset keep the epoll core)"
    )


def read_epoll(env: Mapping[str, str]) -> bool:
    """TRAFFIC_DUPLICATOR_EPOLL: the epoll core (True, the default) or asyncio protocols."""
    return configvars.read_switch(env, EPOLL_ENV, True, _bad_epoll)


@dataclass(frozen=True)
class ProxyEnvironment:
    """The proxy's config vars, as the built-in proxy will read them."""

    processes: int
    epoll: bool


def read_environment(env: Mapping[str, str]) -> ProxyEnvironment:
    """Both config vars; raises ProxySettingsError (one line naming the var) for a bad one."""
    return ProxyEnvironment(processes=read_processes(env), epoll=read_epoll(env))


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
