"""Routes: a request's method and normalised path, so that results are per endpoint.

`GET /users/123?page=2` and `GET /users/456` are one route, `GET /users/:id`. The query
is never part of a route. Path segments that identify a record become placeholders:

| segment | placeholder |
|---|---|
| digits (`123`, also `123.json`) | `:id` |
| a UUID (`3f2b…-…`) | `:uuid` |
| 16 or more hex digits with at least one digit (`9f86d081884c7d65`) | `:hex` |
| 20 or more base64/base64url characters mixing letters and digits | `:token` |

A user's own patterns (`TRAFFIC_DUPLICATOR_COMPARE_ROUTES`) are tried first, in order.
Syntax, comma-separated: an optional method, then a path whose segments are literal,
`:name` (any one segment) or `*name` (the rest of the path, at least one segment), e.g.
`/users/:id/posts/:post_id, GET /blog/:slug, /assets/*path`. The route is the pattern as
written, after the request's method (or the pattern's own method, which must match).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from traffic_duplicator.errors import UserError

OTHER = "other"
MAX_SEGMENTS = 24
MAX_ROUTE_CHARS = 200
MAX_METHOD_CHARS = 24

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NUMBER = re.compile(r"\d+(\.[A-Za-z0-9]{1,8})?")
_HEX = re.compile(r"[0-9a-fA-F]{16,}")
_TOKEN = re.compile(r"[A-Za-z0-9_\-+=~.]{20,}")
_METHOD = re.compile(r"[A-Z][A-Z0-9_-]{0,23}")


class RouteError(UserError):
    """A route pattern that cannot be parsed."""


def placeholder(segment: str) -> str:
    """The placeholder for a path segment that identifies a record, else the segment."""
    if not segment:
        return segment
    number = _NUMBER.fullmatch(segment)
    if number is not None:
        return ":id" + (number.group(1) or "")
    if _UUID.fullmatch(segment):
        return ":uuid"
    if _HEX.fullmatch(segment) and any(c.isdigit() for c in segment):
        return ":hex"
    if (
        _TOKEN.fullmatch(segment)
        and any(c.isdigit() for c in segment)
        and any(c.isalpha() for c in segment)
    ):
        return ":token"
    return segment


def request_path(target: str) -> str:
    """The path of a request target (origin-form or absolute-form), without the query."""
    if target == "*":
        return "*"
    if "://" in target and not target.startswith("/"):
        path = urlsplit(target).path
    else:
        path = target.split("?", 1)[0].split("#", 1)[0]
    return path or "/"


def normalise(method: str, target: str) -> str:
    """`METHOD /normalised/path` by the placeholder rules (module docstring)."""
    path = request_path(target)
    segments = path.split("/")
    if len(segments) > MAX_SEGMENTS:
        segments = [*segments[: MAX_SEGMENTS - 1], "…"]
    route = f"{method[:MAX_METHOD_CHARS]} {'/'.join(placeholder(s) for s in segments)}"
    return route if len(route) <= MAX_ROUTE_CHARS else route[: MAX_ROUTE_CHARS - 1] + "…"


@dataclass(frozen=True)
class RoutePattern:
    """One user pattern: optional method, then segments (`:x` one, `*x` the rest)."""

    text: str
    method: str | None
    segments: tuple[str, ...]

    def matches(self, method: str, segments: list[str]) -> bool:
        if self.method is not None and self.method != method:
            return False
        for i, part in enumerate(self.segments):
            if part.startswith("*"):
                return len(segments) > i and any(segments[i:])
            if i >= len(segments):
                return False
            if not part.startswith(":") and part != segments[i]:
                return False
            if part.startswith(":") and not segments[i]:
                return False
        return len(segments) == len(self.segments)

    def route(self, method: str) -> str:
        path = "/" + "/".join(self.segments)
        return f"{self.method or method[:MAX_METHOD_CHARS]} {path}"


def parse_patterns(
    text: str, source: str = "TRAFFIC_DUPLICATOR_COMPARE_ROUTES"
) -> tuple[RoutePattern, ...]:
    """Comma-separated patterns (module docstring); RouteError names `source` and the pattern."""
    patterns = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        method, _, path = item.rpartition(" ")
        method = method.strip()
        if method and _METHOD.fullmatch(method) is None:
            raise RouteError(f"{source}: {item!r} does not start with a method such as GET")
        if not path.startswith("/"):
            raise RouteError(f"{source}: {item!r} is not a path pattern; write e.g. /users/:id")
        segments = tuple(path[1:].split("/"))
        for i, part in enumerate(segments):
            if part == ":":
                raise RouteError(f"{source}: {item!r} has a ':' without a name")
            if part.startswith("*") and i != len(segments) - 1:
                raise RouteError(f"{source}: {item!r} has a '*' segment that is not the last")
        patterns.append(RoutePattern(item, method or None, segments))
    return tuple(patterns)


class Router:
    """Names each request's route: the user's patterns first, then normalisation."""

    def __init__(self, patterns: tuple[RoutePattern, ...] = ()) -> None:
        self._patterns = patterns

    def route(self, method: str, target: str) -> str:
        if self._patterns:
            segments = request_path(target)[1:].split("/")
            for pattern in self._patterns:
                if pattern.matches(method, segments):
                    return pattern.route(method)
        return normalise(method, target)


class RouteLimit:
    """Admits at most `limit` distinct routes; later new ones are reported as `other`.

    The set only grows, for the life of the process: a route admitted once keeps its row,
    so that the cap bounds memory on any traffic (100,000 distinct URLs included).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self.overflowed = 0

    def admit(self, route: str) -> str:
        if route in self._seen:
            return route
        if len(self._seen) < self._limit:
            self._seen.add(route)
            return route
        self.overflowed += 1
        return OTHER
