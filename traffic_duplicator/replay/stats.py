"""Counters for inputs and outputs, and the logfmt stats lines built from them."""

from __future__ import annotations

from dataclasses import dataclass, field

from traffic_duplicator.logs import LogValue


@dataclass
class InputStats:
    accepted: int = 0  # complete requests read from clients or captures
    malformed: int = 0  # answered 400 (or skipped frames on --input-tcp/--input-file)
    too_large: int = 0  # answered, not mirrored: bigger than the request size limit
    filtered: int = 0  # dropped by a filter or a sampling limiter
    connections: int = 0

    def fields(self) -> dict[str, LogValue]:
        return {
            "accepted": self.accepted,
            "malformed": self.malformed,
            "too_large": self.too_large,
            "filtered": self.filtered,
        }


@dataclass
class OutputStats:
    """One output's counters; latency is summarised per reporting interval."""

    queued: int = 0  # current queue length
    sent: int = 0  # complete responses received (or lines written)
    dropped: int = 0  # queue full
    limited: int = 0  # refused by the output's |N or |N% limit
    errors: int = 0  # connect, TLS, timeout, reset or malformed response
    status: list[int] = field(default_factory=lambda: [0] * 6)  # by class: 1xx .. 5xx
    _latency_sum: float = 0.0
    _latency_count: int = 0
    _latency_max: float = 0.0

    def record(self, status: int, latency: float) -> None:
        self.sent += 1
        self.status[min(status // 100, 5)] += 1
        self._latency_sum += latency
        self._latency_count += 1
        self._latency_max = max(self._latency_max, latency)

    def fields(self, reset_latency: bool = True) -> dict[str, LogValue]:
        count = self._latency_count
        fields: dict[str, LogValue] = {
            "queue": self.queued,
            "sent": self.sent,
            "dropped": self.dropped,
            "limited": self.limited,
            "errors": self.errors,
        }
        for klass, count_ in enumerate(self.status):
            if count_:
                fields[f"status_{klass}xx"] = count_
        if count:
            fields["latency_avg_ms"] = round(self._latency_sum / count * 1000, 2)
            fields["latency_max_ms"] = round(self._latency_max * 1000, 2)
        if reset_latency:
            self._latency_sum = 0.0
            self._latency_count = 0
            self._latency_max = 0.0
        return fields
