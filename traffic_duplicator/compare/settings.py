"""TRAFFIC_DUPLICATOR_COMPARE_* configuration, read from a mapping (the environment).

- `TRAFFIC_DUPLICATOR_COMPARE` (off): `on` (true, 1, yes) turns comparison on.
- `TRAFFIC_DUPLICATOR_COMPARE_IGNORE`: header names and JSON paths to leave out (rules.py).
- `TRAFFIC_DUPLICATOR_COMPARE_ROUTES`: route patterns tried before automatic naming
  (routes.py).
- `TRAFFIC_DUPLICATOR_COMPARE_BASELINE`: the output that runs production's release, as
  its URL written in the options file or its 1-based position.
- `TRAFFIC_DUPLICATOR_COMPARE_INTERVAL` (60): seconds between `at=compare` lines.
- `TRAFFIC_DUPLICATOR_COMPARE_BODY_LIMIT` (64k): body bytes kept per response (`512k`,
  `1m`, …); longer bodies compare by length and digest.

With comparison off the other variables are not read, so a mistake in them cannot stop a
dyno that does not use them. Every mistake is a `CompareSettingsError` naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from traffic_duplicator import configvars
from traffic_duplicator.compare.model import DEFAULT_BODY_LIMIT
from traffic_duplicator.compare.redact import mask_url
from traffic_duplicator.compare.routes import RoutePattern, parse_patterns
from traffic_duplicator.compare.rules import CompareRules, parse_ignore
from traffic_duplicator.errors import UserError
from traffic_duplicator.options import BadValue, parse_output_http, parse_size

COMPARE = "TRAFFIC_DUPLICATOR_COMPARE"
IGNORE = "TRAFFIC_DUPLICATOR_COMPARE_IGNORE"
ROUTES = "TRAFFIC_DUPLICATOR_COMPARE_ROUTES"
BASELINE = "TRAFFIC_DUPLICATOR_COMPARE_BASELINE"
INTERVAL = "TRAFFIC_DUPLICATOR_COMPARE_INTERVAL"
BODY_LIMIT = "TRAFFIC_DUPLICATOR_COMPARE_BODY_LIMIT"

DEFAULT_INTERVAL = 60.0
MAX_INTERVAL = 3600.0
MAX_BODY_LIMIT = 16 * 1024 * 1024


class CompareSettingsError(UserError):
    """A TRAFFIC_DUPLICATOR_COMPARE_* variable has a value we cannot use."""


@dataclass(frozen=True)
class CompareSettings:
    enabled: bool = False
    rules: CompareRules = field(default_factory=CompareRules)
    routes: tuple[RoutePattern, ...] = ()
    baseline: str | None = None
    interval: float = DEFAULT_INTERVAL
    body_limit: int = DEFAULT_BODY_LIMIT


def read_enabled(env: Mapping[str, str]) -> bool:
    return configvars.read_switch(
        env,
        COMPARE,
        default=False,
        error=lambda raw: CompareSettingsError(
            f"{COMPARE}={raw!r} is not understood; use on (or true, 1, yes) to compare the "
            "shadow's responses with production's, off (or unset) not to"
        ),
    )


def _interval(env: Mapping[str, str]) -> float:
    raw = env.get(INTERVAL, "")
    value = configvars.seconds(raw, DEFAULT_INTERVAL, 1, MAX_INTERVAL)
    if value is None:
        raise CompareSettingsError(
            f"{INTERVAL}={raw.strip()!r} is not a number of seconds from 1 to {MAX_INTERVAL:g}"
        )
    return value


def parse_body_limit(text: str) -> int:
    """A body limit (`64k`, `1m`, …) from 0 to 16m; ValueError otherwise (the proxy's
    `--compare-body-limit` reads the same)."""
    try:
        value = parse_size(text)
    except BadValue:
        value = -1
    if not 0 <= value <= MAX_BODY_LIMIT:
        raise ValueError(f"{text!r} is not a size from 0 to 16m, e.g. 64k")
    return value


def _body_limit(env: Mapping[str, str]) -> int:
    raw = env.get(BODY_LIMIT, "").strip()
    if not raw:
        return DEFAULT_BODY_LIMIT
    try:
        return parse_body_limit(raw)
    except ValueError as exc:
        raise CompareSettingsError(f"{BODY_LIMIT}={exc}") from None


def read_compare_settings(env: Mapping[str, str]) -> CompareSettings:
    """The comparison settings; the defaults when comparison is off."""
    if not read_enabled(env):
        return CompareSettings()
    return CompareSettings(
        enabled=True,
        rules=parse_ignore(env.get(IGNORE, "")),
        routes=parse_patterns(env.get(ROUTES, ""), ROUTES),
        baseline=env.get(BASELINE, "").strip() or None,
        interval=_interval(env),
        body_limit=_body_limit(env),
    )


def resolve_baseline(baseline: str | None, outputs: Sequence[str]) -> int | None:
    """The 0-based index of the baseline among `outputs` (their normalised `--output-http`
    URLs, in options-file order), or None without a baseline."""
    if baseline is None:
        return None
    choices = ", ".join(f"{i} ({mask_url(url)})" for i, url in enumerate(outputs, 1)) or "none"
    if baseline.isdigit():
        position = int(baseline)
        if not 1 <= position <= len(outputs):
            raise CompareSettingsError(
                f"{BASELINE}={baseline} is not the position of an --output-http; "
                f"the outputs are {choices}"
            )
        return position - 1
    try:
        wanted = parse_output_http(baseline).url
    except BadValue as exc:
        raise CompareSettingsError(f"{BASELINE}={mask_url(baseline)!r}: {exc}") from None
    for index, url in enumerate(outputs):
        # Both sides as printed (a password shows as ***), whichever form `outputs` holds.
        if mask_url(url).rstrip("/") == wanted.rstrip("/"):
            return index
    raise CompareSettingsError(
        f"{BASELINE}={mask_url(baseline)!r} names no --output-http; "
        f"use a URL or a position from: {choices}"
    )
