"""The wrapper's TRAFFIC_DUPLICATOR_* configuration, read once from the environment.

Each component gets its own small frozen record. Reading is pure (it takes a mapping),
and every bad value is a `SettingsError` naming the variable and what it accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TypeVar

from traffic_duplicator import configvars
from traffic_duplicator.compare.settings import read_enabled as read_compare_enabled
from traffic_duplicator.errors import UserError

ENABLED = "TRAFFIC_DUPLICATOR_ENABLED"
REPLAYER = "TRAFFIC_DUPLICATOR_REPLAYER"
PROXY = "TRAFFIC_DUPLICATOR_PROXY"
GOR = "TRAFFIC_DUPLICATOR_GOR"
HOME = "TRAFFIC_DUPLICATOR_HOME"
OPTIONS = "TRAFFIC_DUPLICATOR_OPTIONS"
SHUTDOWN_TIMEOUT = "TRAFFIC_DUPLICATOR_SHUTDOWN_TIMEOUT"
RESTART_BACKOFF_BASE = "TRAFFIC_DUPLICATOR_RESTART_BACKOFF_BASE"

DEFAULT_OPTIONS_PATH = "config/gor.options"
# Heroku sends SIGKILL 30 s after SIGTERM; 25 s leaves room to SIGKILL leftovers ourselves.
DEFAULT_SHUTDOWN_TIMEOUT = 25.0
DEFAULT_RESTART_BACKOFF_BASE = 1.0
# Longer than any sane shutdown; a typo such as 2500 (meant as ms) is refused rather than obeyed.
MAX_SECONDS = 3600.0


class SettingsError(UserError):
    """A TRAFFIC_DUPLICATOR_* variable has a value we do not understand."""


class ReplayerMode(Enum):
    AUTO = "auto"
    BUILTIN = "builtin"
    GOR = "gor"


class ProxyMode(Enum):
    AUTO = "auto"
    BUILTIN = "builtin"
    EM_PROXY = "em-proxy"


_Mode = TypeVar("_Mode", ReplayerMode, ProxyMode)


@dataclass(frozen=True)
class EngineSettings:
    """Which replayer and proxy the user asked for, and where to look for a gor binary."""

    replayer: ReplayerMode = ReplayerMode.AUTO
    proxy: ProxyMode = ProxyMode.AUTO
    gor_path: str | None = None
    home: Path | None = None
    compare: bool = False  # TRAFFIC_DUPLICATOR_COMPARE: both engines must be the built-in ones
    uvloop: bool = True  # TRAFFIC_DUPLICATOR_UVLOOP: the engines' loop (loops.read_uvloop)


@dataclass(frozen=True)
class SupervisionSettings:
    """How long a graceful shutdown may take, and how fast a crashed replayer comes back."""

    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    restart_backoff_base: float = DEFAULT_RESTART_BACKOFF_BASE


@dataclass(frozen=True)
class Settings:
    enabled: bool
    options_path: Path
    engines: EngineSettings
    supervision: SupervisionSettings


def read_enabled(env: Mapping[str, str]) -> bool:
    """The kill switch: read first, because a disabled wrapper reads nothing else."""
    return configvars.read_switch(
        env,
        ENABLED,
        default=True,
        error=lambda raw: SettingsError(
            f"{ENABLED}={raw!r} is not understood; use false, 0, no or off to turn duplication "
            "off (true, 1, yes, on or unset keep it on)"
        ),
    )


def _choice(env: Mapping[str, str], name: str, enum: type[_Mode]) -> _Mode:
    raw = env.get(name, "").strip()
    word = raw.lower() or "auto"
    for member in enum:
        if member.value == word:
            return member
    allowed = ", ".join(member.value for member in enum)
    raise SettingsError(f"{name}={raw!r} is not an engine; use one of: {allowed}")


def _seconds(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "")
    value = configvars.seconds(raw, default, minimum, MAX_SECONDS)
    if value is None:
        raise SettingsError(
            f"{name}={raw.strip()!r} is not a number of seconds from {minimum:g} to {MAX_SECONDS:g}"
        )
    return value


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def read_settings(env: Mapping[str, str]) -> Settings:
    """Every TRAFFIC_DUPLICATOR_* setting, validated; PORT is read by `ports.plan_ports`.

    The built-in proxy's own vars are checked once the engines are chosen
    (`proxy.config.read_environment`): they matter only when that proxy runs."""
    # Here, not at the top: `loops` imports asyncio, which the kill switch's path never needs.
    from traffic_duplicator.loops import read_uvloop

    home = _optional(env, HOME)
    engines = EngineSettings(
        replayer=_choice(env, REPLAYER, ReplayerMode),
        proxy=_choice(env, PROXY, ProxyMode),
        gor_path=_optional(env, GOR),
        home=Path(home) if home else None,
        compare=read_compare_enabled(env),
        uvloop=read_uvloop(env),
    )
    supervision = SupervisionSettings(
        shutdown_timeout=_seconds(env, SHUTDOWN_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, 0.1),
        restart_backoff_base=_seconds(
            env, RESTART_BACKOFF_BASE, DEFAULT_RESTART_BACKOFF_BASE, 0.01
        ),
    )
    return Settings(
        enabled=read_enabled(env),
        options_path=Path(_optional(env, OPTIONS) or DEFAULT_OPTIONS_PATH),
        engines=engines,
        supervision=supervision,
    )
