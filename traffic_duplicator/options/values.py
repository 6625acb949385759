"""Scalar flag values: Go durations, counts, sizes, booleans and `|N`/`|N%` limits.

This is the one place these grammars live: the options file, the replayer and the tee
proxy (`--mirror-buffer`) all parse sizes with `parse_size`. Each parser takes the text as
written and returns a typed value, or raises BadValue with what to write instead.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from traffic_duplicator.addr import Address, parse_host_port
from traffic_duplicator.errors import AddressError
from traffic_duplicator.options.errors import BadValue

MAX_PERCENT = 100
# The spellings Go's strconv.ParseBool accepts, which gor's `-flag=value` goes through.
TRUE_WORDS = ("1", "t", "T", "true", "TRUE", "True")
FALSE_WORDS = ("0", "f", "F", "false", "FALSE", "False")


def parse_bool(text: str) -> bool:
    """`true`/`false` as Go's flag package spells them (see TRUE_WORDS, FALSE_WORDS)."""
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise BadValue(f"{text!r} is not true or false")


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """A Go duration (`5s`, `300ms`, `1m30s`, `0`) in seconds (Go's time.ParseDuration)."""
    value = text.strip()
    if value == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(value):
        match = _DURATION_PART.match(value, pos)
        if match is None:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not value or pos != len(value):
        raise BadValue(f"{text!r} is not a duration; write it with a unit, e.g. 5s or 500ms")
    return total


def parse_count(text: str) -> int:
    """A non-negative decimal integer."""
    value = text.strip()
    if not value.isdigit():
        raise BadValue(f"{text!r} is not a whole number, e.g. 10")
    return int(value)


def parse_verbose(text: str) -> int:
    """gor 1.x takes a level; 0.x files write --verbose=true."""
    if text in TRUE_WORDS:
        return 1
    if text in FALSE_WORDS:
        return 0
    return parse_count(text)


# Binary units whatever the spelling: gor's `32mb` (internal/size), em-proxy-style `512k`,
# and `1MiB`. A bare number is bytes.
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from `4096`, `1k`, `512kb`, `32mb`, `5MB`, `1MiB`, `1.5g`, `2T` (1k = 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise BadValue(f"{text!r} is not a size, e.g. 32mb")
    unit = (match.group(2) or "").lower()
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


class LimitKind(enum.Enum):
    RATE = "rate"  # at most N requests a second; the excess is dropped
    PERCENT = "percent"  # a random N % sample


@dataclass(frozen=True)
class Limit:
    kind: LimitKind
    value: int

    def __str__(self) -> str:
        return f"{self.value}%" if self.kind is LimitKind.PERCENT else f"{self.value}/s"


def parse_limit(text: str) -> Limit:
    """The part after `|`: `N` requests a second or `N%` of requests (gor's limiter.go)."""
    value = text.strip()
    kind = LimitKind.RATE
    if value.endswith("%"):
        kind, value = LimitKind.PERCENT, value[:-1].strip()
    if not value.isdigit():
        raise BadValue(f"limit {text!r} is not N or N%, e.g. |10 or |25%")
    return Limit(kind, int(value))


def split_limit(text: str) -> tuple[str, Limit | None]:
    """`ADDRESS|limit` into the address and its limit (None without a `|`)."""
    base, bar, suffix = text.rpartition("|")
    if not bar:
        return text, None
    return base, parse_limit(suffix)


@dataclass(frozen=True)
class Listen:
    """An input address `[HOST]:PORT[|limit]`."""

    address: Address
    limit: Limit | None


def parse_listen(text: str) -> Listen:
    """`[HOST]:PORT[|limit]` for `--input-http` and `--input-tcp`."""
    raw, limit = split_limit(text.strip())
    try:
        return Listen(parse_host_port(raw), limit)
    except AddressError as exc:
        raise BadValue(str(exc)) from None


@dataclass(frozen=True)
class InputFile:
    path: str
    speed_percent: int  # `file|200%` replays twice as fast; 100 keeps the recorded pace


def parse_input_file(text: str) -> InputFile:
    """`PATH[|N%]`: a capture to replay, optionally faster or slower than recorded."""
    raw, limit = split_limit(text)
    if not raw:
        raise BadValue("the path is empty")
    if limit is None:
        return InputFile(raw, 100)
    if limit.kind is not LimitKind.PERCENT or limit.value == 0:
        raise BadValue(f"{text!r}: an input file takes a speed like |200%, not a rate")
    return InputFile(raw, limit.value)


def parse_text(text: str) -> str:
    """Any text, kept as written (paths, and flags only a real gor reads)."""
    return text
