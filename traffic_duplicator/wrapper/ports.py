"""The port plan and the rewrite of the app's command line from $PORT to the app's port.

The proxy takes $PORT, the app PORT+1 and the replayer PORT+2 unless overridden. The app's
argv is rewritten word by word: a word is changed only where it names the port as a whole
number (`5000`, `-p5000`, `--port=5000`, `0.0.0.0:5000`, `tcp://[::]:5000`, a URL), or
holds an unexpanded `$PORT` / `${PORT}` / `${PORT:-3000}`. Everything here is pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from traffic_duplicator.addr import MAX_PORT, parse_port, port_is_free
from traffic_duplicator.errors import PortInUseError, UserError

PORT = "PORT"
APP_PORT = "TRAFFIC_DUPLICATOR_APP_PORT"
REPLAYER_PORT = "TRAFFIC_DUPLICATOR_REPLAYER_PORT"

# Internal hops listen on loopback only, so nothing but the proxy is reachable from outside.
LOOPBACK = "127.0.0.1"


class PortPlanError(UserError):
    """$PORT or an override is missing, malformed, or collides with another port."""


@dataclass(frozen=True)
class PortPlan:
    public: int  # $PORT: the proxy listens here, on every interface
    app: int
    replayer: int


def _override(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    return parse_port(raw, name) if raw else default


def plan_ports(env: Mapping[str, str]) -> PortPlan:
    """Where each process listens, from PORT and the two TRAFFIC_DUPLICATOR_*_PORT overrides."""
    raw = env.get(PORT, "").strip()
    if not raw:
        raise PortPlanError(
            "PORT is not set; the platform sets it for a web process "
            "(to run locally: PORT=5000 start-traffic-duplicator COMMAND)"
        )
    public = parse_port(raw, PORT)
    app = _override(env, APP_PORT, public + 1)
    replayer = _override(env, REPLAYER_PORT, public + 2)
    for port, name in ((app, APP_PORT), (replayer, REPLAYER_PORT)):
        if port > MAX_PORT:
            raise PortPlanError(
                f"PORT={public} leaves no room for {port}; set {name} to a free port"
            )
    if len({public, app, replayer}) != 3:
        raise PortPlanError(
            f"ports must differ: PORT={public}, {APP_PORT}={app}, {REPLAYER_PORT}={replayer}"
        )
    return PortPlan(public, app, replayer)


def check_ports_free(plan: PortPlan, is_free: Callable[[int, str], bool] = port_is_free) -> None:
    """Refuse to start when a port of the plan is taken, naming the variable that moves it."""
    # The proxy binds $PORT dual-stack (host ""), the internal hops bind loopback.
    checks = (
        (plan.app, LOOPBACK, f"the app's port; set {APP_PORT} to move it"),
        (plan.replayer, LOOPBACK, f"the replayer's port; set {REPLAYER_PORT} to move it"),
        (plan.public, "", "$PORT, where the proxy listens; stop what listens there"),
    )
    for port, host, what in checks:
        if not is_free(port, host):
            where = f" on {host}" if host else ""
            raise PortInUseError(f"port {port} is already in use{where} ({what})")


@dataclass(frozen=True)
class Rewrite:
    """One argv word changed to name the app's port."""

    position: int  # index in the command; 0 is the program
    old: str
    new: str


@dataclass(frozen=True)
class Kept:
    """A word equal to the port that was left alone because it is another option's value."""

    position: int
    word: str
    reason: str


@dataclass(frozen=True)
class RewrittenCommand:
    argv: tuple[str, ...]
    rewrites: tuple[Rewrite, ...]
    kept: tuple[Kept, ...]


# $PORT, ${PORT}, ${PORT:-3000}, ${PORT-3000}, ${PORT:=3000}, ${PORT:?msg};
# not $PORTS, nor ${PORT:+x} (which means "x when PORT is set").
_ENV_REFERENCE = re.compile(r"\$(?:PORT(?![A-Za-z0-9_])|\{PORT(?::?[-=?][^}]*)?\})")

# `--name=VALUE`, `-n=VALUE`, or a one-letter short option with its value attached (`-p5000`).
_LONG_WITH_VALUE = re.compile(r"(?P<prefix>--?(?P<name>[A-Za-z][\w.-]*)=)(?P<value>.*)", re.DOTALL)
_SHORT_ATTACHED = re.compile(r"(?P<prefix>-(?P<name>[A-Za-z]))(?P<value>.+)", re.DOTALL)
_LONG_OPTION = re.compile(r"--(?P<name>[A-Za-z][\w.-]*)")
_SHORT_OPTION = re.compile(r"-(?P<name>[A-Za-z])")

# Option names whose bare-number value is a port; any other option's number is left alone.
_PORT_OPTION_NAME = re.compile(r"port|bind|listen|addr|host|server|url|http|socket", re.IGNORECASE)
_PORT_SHORT_OPTIONS = frozenset("pP")

_HOST = (
    r"(?:\[[0-9A-Fa-f:.]*(?:%[\w.-]+)?\]"  # [::], [::1], [fe80::1%eth0]
    r"|\*"
    r"|\d{1,3}(?:\.\d{1,3}){3}"  # IPv4
    r"|(?=[\w.-]*[A-Za-z])[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"  # a name, not a bare number
    r")?"
)
_HOST_PORT = re.compile(rf"{_HOST}:(?P<port>\d+)")
_URL = re.compile(
    rf"(?:https?|wss?|tcp[46]?|ssl|tls)://(?:[^@/\s]*@)?{_HOST}:(?P<port>\d+)(?:[/?#].*)?",
    re.IGNORECASE | re.DOTALL,
)


def _port_span(value: str, original: str) -> tuple[int, int] | None:
    """Where `value` names `original` as the port of an address or URL."""
    for pattern in (_HOST_PORT, _URL):
        match = pattern.fullmatch(value)
        if match and match.group("port") == original:
            return match.span("port")
    return None


def _bare_number_owner(argv: Sequence[str], position: int) -> str | None:
    """The option a standalone number belongs to when that option is not about ports."""
    if position < 2:
        return None
    previous = argv[position - 1]
    long = _LONG_OPTION.fullmatch(previous)
    if long and not _PORT_OPTION_NAME.search(long.group("name")):
        return previous
    short = _SHORT_OPTION.fullmatch(previous)
    if short and short.group("name") not in _PORT_SHORT_OPTIONS:
        return previous
    return None


def _split_option(word: str) -> tuple[str, str, str]:
    """(prefix, value, option name) of `--name=value` or `-Xvalue`; else ("", word, "")."""
    for pattern in (_LONG_WITH_VALUE, _SHORT_ATTACHED):
        match = pattern.fullmatch(word)
        if match:
            return match["prefix"], match["value"], match["name"]
    return "", word, ""


def _is_port_option(prefix: str, option_name: str) -> bool:
    if prefix.endswith("="):
        return bool(_PORT_OPTION_NAME.search(option_name))
    return option_name in _PORT_SHORT_OPTIONS


def _rewrite_whole_value(
    argv: Sequence[str], position: int, prefix: str, option_name: str, target: str
) -> tuple[str, str | None]:
    """A word whose whole value is the port: rewritten unless it belongs to another option."""
    word = argv[position]
    if prefix:
        if _is_port_option(prefix, option_name):
            return prefix + target, None
        return word, f"value of {prefix.rstrip('=')}"
    owner = _bare_number_owner(argv, position)
    if owner is None:
        return target, None
    return word, f"value of {owner}"


def _rewrite_word(
    argv: Sequence[str], position: int, original: str, target: str
) -> tuple[str, str | None]:
    """The word with the port rewritten, and the reason when a port-like number was kept."""
    word = argv[position]
    if _ENV_REFERENCE.search(word):
        # An unexpanded reference names the port wherever it stands.
        return _ENV_REFERENCE.sub(target, word), None
    prefix, value, option_name = _split_option(word)
    if value == original:
        return _rewrite_whole_value(argv, position, prefix, option_name, target)
    span = _port_span(value, original)
    if span is None:
        return word, None
    start, end = span
    return prefix + value[:start] + target + value[end:], None


def rewrite_command(argv: Sequence[str], original: int, target: int) -> RewrittenCommand:
    """The app's command with every word that names port `original` changed to `target`.

    The program (argv[0]) is never touched. With `original == target` only unexpanded
    $PORT references change, which is what the kill switch needs.
    """
    words = list(argv)
    rewrites: list[Rewrite] = []
    kept: list[Kept] = []
    for position in range(1, len(words)):
        old = words[position]
        new, kept_reason = _rewrite_word(argv, position, str(original), str(target))
        if kept_reason is not None:
            kept.append(Kept(position, old, kept_reason))
        elif new != old:
            words[position] = new
            rewrites.append(Rewrite(position, old, new))
    return RewrittenCommand(tuple(words), tuple(rewrites), tuple(kept))
