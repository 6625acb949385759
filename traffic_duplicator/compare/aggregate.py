"""Counts per output and route over one interval, turned into `at=compare` lines.

Memory is bounded on any traffic: at most `max_routes` routes per output (then `other`),
at most `max_fields` differing fields per route (then `other`), and one histogram of at
most a few hundred buckets per side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from traffic_duplicator.compare import lines
from traffic_duplicator.compare.diff import Outcome
from traffic_duplicator.compare.histogram import Histogram
from traffic_duplicator.compare.routes import RouteLimit
from traffic_duplicator.logs import LogValue, logfmt

DEFAULT_MAX_ROUTES = 100
DEFAULT_MAX_FIELDS = 32
# No output timeout is this long; clamping keeps every histogram (and line) short.
MAX_RECORDED_LATENCY = 600.0


@dataclass
class RouteStats:
    """One output's counts for one route over the current interval."""

    compared: int = 0
    status_mismatch: int = 0
    header_mismatch: int = 0
    body_mismatch: int = 0
    errors: int = 0
    dropped: int = 0
    production: Histogram = field(default_factory=Histogram)
    shadow: Histogram = field(default_factory=Histogram)
    fields: dict[str, int] = field(default_factory=dict)

    def add(
        self, outcome: Outcome, production: float | None, shadow: float, max_fields: int
    ) -> None:
        self.compared += 1
        self.status_mismatch += outcome.status is not None
        self.header_mismatch += bool(outcome.headers)
        self.body_mismatch += bool(outcome.body)
        if production is not None:
            self.production.record(min(production, MAX_RECORDED_LATENCY))
        self.shadow.record(min(shadow, MAX_RECORDED_LATENCY))
        # A field counts once per pair, however many array elements differ there.
        for name in {difference.field for difference in outcome.differences}:
            if name not in self.fields and len(self.fields) >= max_fields:
                name = lines.OTHER_FIELD
            self.fields[name] = self.fields.get(name, 0) + 1

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in lines.COUNTS}


@dataclass(frozen=True)
class Output:
    """How an output appears in log lines."""

    destination: str  # credentials already masked
    role: str  # lines.BASELINE or lines.CANDIDATE


class Aggregator:
    """Per output, per route counts for the interval in progress."""

    def __init__(
        self,
        outputs: list[Output],
        source: str,
        max_routes: int = DEFAULT_MAX_ROUTES,
        max_fields: int = DEFAULT_MAX_FIELDS,
    ) -> None:
        self.outputs = outputs
        self._source = source
        self._max_fields = max_fields
        self._limits = [RouteLimit(max_routes) for _ in outputs]
        self._stats: list[dict[str, RouteStats]] = [{} for _ in outputs]

    def admit(self, output: int, route: str) -> str:
        """`route`, or `other` when the output already has its fill of routes."""
        return self._limits[output].admit(route)

    def route_stats(self, output: int, route: str) -> RouteStats:
        route = self.admit(output, route)
        table = self._stats[output]
        stats = table.get(route)
        if stats is None:
            stats = table[route] = RouteStats()
        return stats

    def compared(
        self, output: int, route: str, outcome: Outcome, production: float | None, shadow: float
    ) -> None:
        self.route_stats(output, route).add(outcome, production, shadow, self._max_fields)

    def flush(self, end: float, final: bool = False) -> list[str]:
        """The interval's `at=compare` lines; counting starts afresh."""
        out = []
        for index, output in enumerate(self.outputs):
            for route, stats in sorted(self._stats[index].items()):
                out.append(self._line(output, route, stats, end, final))
            self._stats[index] = {}
        return out

    def _line(self, output: Output, route: str, stats: RouteStats, end: float, final: bool) -> str:
        counts = stats.counts()
        head: dict[str, LogValue] = {
            "at": lines.COMPARE,
            "source": self._source,
            "destination": output.destination,
            "role": output.role,
            "route": route,
            **counts,
            lines.PRODUCTION_LATENCY: stats.production.encode(),
            lines.SHADOW_LATENCY: stats.shadow.encode(),
        }
        tail: dict[str, LogValue] = {"end": int(end)}
        if final:
            tail["final"] = True
        for name, count in counts.items():
            tail[f"count#{lines.METRIC_PREFIX}{name}"] = count
        for side, histogram in (("production", stats.production), ("shadow", stats.shadow)):
            p95 = histogram.quantile(0.95)
            if p95 is not None:
                tail[f"sample#{lines.METRIC_PREFIX}{side}.p95_ms"] = round(p95 * 1000, 3)
        # `fields` is not a logfmt value like the others: logfmt would mask it as free text,
        # and a secret-named header's count would read as its value (lines.render_fields).
        before, after = logfmt(**head), logfmt(**tail)
        line = f"{before} {lines.render_fields(stats.fields)} {after}"
        if len(line) > lines.LINE_BUDGET:
            # Only the field list can make a line long: keep its most frequent entries.
            keep = dict(stats.fields)
            while keep and len(line) > lines.LINE_BUDGET:
                keep.pop(min(keep, key=lambda name: (keep[name], name)))
                line = f"{before} {lines.render_fields(keep)} {after}"
        return line
