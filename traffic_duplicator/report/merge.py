"""Merging records into one row per destination and route, and deciding what is flagged.

Counts and histograms add up across dynos and intervals. A candidate's row is flagged
when any of its fields (`status`, `header:…`, `body…`, or `errors`, destinations that did
not answer) differs more than the baseline's same route and field, by Diffy's rule
(compare/noise.py), or when its median latency shifted more than the baseline's. Without
any baseline line in the input, every difference is flagged. A baseline is never flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from traffic_duplicator.compare import lines
from traffic_duplicator.compare.histogram import Histogram
from traffic_duplicator.compare.noise import (
    DEFAULT_THRESHOLDS,
    Latency,
    Rate,
    Thresholds,
    exceeds_noise,
    slower_than_noise,
)
from traffic_duplicator.report.reader import CompareRecord

ERRORS_FIELD = "errors"
LATENCY_FIELD = "latency"
TOP_FIELDS = 5
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


@dataclass
class Row:
    destination: str
    role: str
    route: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(lines.COUNTS, 0))
    production: Histogram = field(default_factory=Histogram)
    shadow: Histogram = field(default_factory=Histogram)
    fields: dict[str, int] = field(default_factory=dict)
    flagged_fields: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.flagged_fields)

    def add(self, record: CompareRecord | Row) -> None:
        """Add a line's (or another row's) counts, histograms and fields to this row."""
        for key, value in record.counts.items():
            self.counts[key] += value
        self.production.merge(record.production)
        self.shadow.merge(record.shadow)
        for name, count in record.fields.items():
            self.fields[name] = self.fields.get(name, 0) + count
        if record.role == lines.BASELINE:
            self.role = lines.BASELINE

    def rates(self) -> dict[str, Rate]:
        """Each differing field's rate, plus the rate of unanswered requests."""
        compared = self.counts["compared"]
        rates = {name: Rate(count, compared) for name, count in self.fields.items()}
        errors = self.counts["errors"]
        rates[ERRORS_FIELD] = Rate(errors, compared + errors)
        return rates

    def latency(self) -> Latency | None:
        production, shadow = self.production.quantile(0.5), self.shadow.quantile(0.5)
        if production is None or shadow is None:
            return None
        return Latency(production, shadow, min(self.production.total, self.shadow.total))

    def top_fields(self) -> list[tuple[str, int]]:
        """The most frequent differing fields, flagged ones first."""
        flagged = set(self.flagged_fields)
        ordered = sorted(
            self.fields.items(), key=lambda item: (item[0] not in flagged, -item[1], item[0])
        )
        return ordered[:TOP_FIELDS]

    def milliseconds(self, histogram: Histogram) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name, q in QUANTILES:
            value = histogram.quantile(q)
            out[name] = None if value is None else round(value * 1000, 2)
        return out


def merge(records: list[CompareRecord]) -> list[Row]:
    """One row per destination and route, sorted: baselines first, then by name."""
    rows: dict[tuple[str, str], Row] = {}
    for record in records:
        key = (record.destination, record.route)
        row = rows.get(key)
        if row is None:
            row = rows[key] = Row(record.destination, record.role, record.route)
        row.add(record)
    return sorted(rows.values(), key=lambda r: (r.role != lines.BASELINE, r.destination, r.route))


def flag(rows: list[Row], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> None:
    """Set each candidate row's `flagged_fields` (module docstring)."""
    noise: dict[str, Row] = {}
    for row in rows:
        if row.role == lines.BASELINE:
            noise.setdefault(row.route, Row("baseline", lines.BASELINE, row.route)).add(row)
    has_baseline = any(row.role == lines.BASELINE for row in rows)
    for row in rows:
        row.flagged_fields = []
        if row.role == lines.BASELINE:
            continue
        base = noise.get(row.route)
        if base is None and has_baseline:
            base = Row("baseline", lines.BASELINE, row.route)  # measured no noise here
        base_rates = base.rates() if base is not None else {}
        for name, rate in sorted(row.rates().items()):
            reference = base_rates.get(name, Rate(0, 0)) if base is not None else None
            if exceeds_noise(rate, reference, thresholds):
                row.flagged_fields.append(name)
        latency = row.latency()
        base_latency = base.latency() if base is not None else None
        if latency is not None and slower_than_noise(latency, base_latency, thresholds):
            row.flagged_fields.append(LATENCY_FIELD)


def to_json(row: Row) -> dict[str, object]:
    compared = row.counts["compared"]
    out: dict[str, object] = {
        "destination": row.destination,
        "role": row.role,
        "route": row.route,
        **row.counts,
    }
    for kind in ("status", "header", "body"):
        count = row.counts[f"{kind}_mismatch"]
        out[f"{kind}_mismatch_rate"] = round(count / compared, 6) if compared else 0.0
    out["production_ms"] = row.milliseconds(row.production)
    out["shadow_ms"] = row.milliseconds(row.shadow)
    out["flagged"] = row.flagged
    out["flagged_fields"] = list(row.flagged_fields)
    out["top_fields"] = [{"field": name, "count": count} for name, count in row.top_fields()]
    return out
