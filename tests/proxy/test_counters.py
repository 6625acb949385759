"""The stats line: one logfmt line per target, the primary totals on each."""

from __future__ import annotations

from traffic_duplicator.logs import logfmt
from traffic_duplicator.proxy.counters import RelayCounters, TargetCounters, stats_lines


def test_one_line_per_target_with_the_totals_on_each() -> None:
    relay = RelayCounters(connections=3, open=1, requests=10, unframed=1)
    lines = stats_lines(
        "stats",
        relay,
        [("127.0.0.1:5002", TargetCounters(8, 1, 1)), ("gor://h:9", TargetCounters(10, 0, 0))],
    )
    assert [logfmt(**fields) for fields in lines] == [
        "at=stats connections=3 open=1 requests=10 unframed=1 "
        "target=127.0.0.1:5002 mirrored=8 dropped=1 failed=1",
        "at=stats connections=3 open=1 requests=10 unframed=1 "
        "target=gor://h:9 mirrored=10 dropped=0 failed=0",
    ]


def test_without_targets_one_line() -> None:
    lines = stats_lines("stats", RelayCounters(connections=1), [])
    assert [logfmt(**fields) for fields in lines] == [
        "at=stats connections=1 open=0 requests=0 unframed=0"
    ]
