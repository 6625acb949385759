"""The numbers of bench/proxy.py: one wrk run per path and round, and the medians."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from common import WrkResult

REQUESTS_PER_UNIT = 10_000  # CPU is reported per 10k requests, as in the issue


@dataclass
class Run:
    wrk: WrkResult
    served: int  # requests the app served during the run (nginx's counter)
    mirrored: int | None  # requests/messages the mirror target received, if it counts
    cpu: float  # the proxy's CPU seconds during the run and the mirror's catch-up
    cpu_system: float  # the part of `cpu` spent in the kernel
    rss_mib: float  # the proxy's resident set after the run

    @property
    def cpu_per_10k(self) -> float:
        return self.cpu / self.served * REQUESTS_PER_UNIT if self.served else 0.0

    @property
    def delivery(self) -> float | None:
        if self.mirrored is None or not self.served:
            return None
        return 100.0 * self.mirrored / self.served


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


HEADERS = [
    "load",
    "path",
    "req/s",
    "x direct",
    "x nginx",
    "p50 ms",
    "p99 ms",
    "p50 added µs",
    "CPU-s/10k req",
    "CPU x nginx",
    "mirror delivered",
    "wrk errors",
]


@dataclass
class ScenarioResult:
    name: str
    about: str
    stalled: bool
    rounds: list[dict[str, Run]] = field(default_factory=list)  # path name -> its run
    notes: dict[str, str] = field(default_factory=dict)

    def table_headers(self) -> list[str]:
        return HEADERS

    def _ratio(self, name: str, base: str, value: Callable[[Run], float]) -> str:
        """Median over rounds of value(path) / value(base) in the same round."""
        ratios = [
            value(runs[name]) / value(runs[base])
            for runs in self.rounds
            if base in runs and value(runs[base])
        ]
        return f"{median(ratios):.2f}" if ratios else ""

    def _delivery(self, name: str) -> str:
        deliveries = [d for d in (runs[name].delivery for runs in self.rounds) if d is not None]
        if deliveries:
            text = f"{median(deliveries):.1f} %"
            if min(deliveries) < median(deliveries) - 0.05:
                text += f" (min {min(deliveries):.1f})"
            return text
        return "stalled" if self.stalled else "n/a"

    def table_rows(self) -> list[list[str]]:
        rows = []
        names = list(self.rounds[0]) if self.rounds else []
        for index, name in enumerate(names):
            runs = [r[name] for r in self.rounds]
            proxied = name != "direct"
            added = [
                (r[name].wrk.p50_ms - r["direct"].wrk.p50_ms) * 1000
                for r in self.rounds
                if "direct" in r
            ]
            cpu = median([r.cpu_per_10k for r in runs])
            system = median([r.cpu_system / r.cpu if r.cpu else 0.0 for r in runs])
            rows.append(
                [
                    self.about if index == 0 else "",
                    name,
                    f"{median([r.wrk.rps for r in runs]):.0f}",
                    self._ratio(name, "direct", lambda r: r.wrk.rps),
                    self._ratio(name, "nginx", lambda r: r.wrk.rps) if proxied else "",
                    f"{median([r.wrk.p50_ms for r in runs]):.2f}",
                    f"{median([r.wrk.p99_ms for r in runs]):.2f}",
                    f"{median(added):.0f}" if proxied and added else "",
                    f"{cpu:.2f} ({system:.0%} sys)" if proxied else "",
                    self._ratio(name, "nginx", lambda r: r.cpu_per_10k) if proxied else "",
                    self._delivery(name) if proxied else "",
                    str(sum(r.wrk.errors for r in runs)),
                ]
            )
        return rows
