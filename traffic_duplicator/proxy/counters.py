"""The proxy's counters and the logfmt stats line built from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from traffic_duplicator.http1 import REASONS
from traffic_duplicator.logs import LogValue


@dataclass(slots=True)
class RelayCounters:
    """Primary path: client connections and the requests relayed on them."""

    connections: int = 0  # accepted since start
    open: int = 0  # open right now
    requests: int = 0  # complete requests framed and relayed to the app
    unframed: int = 0  # connections whose mirroring stopped (upgrade, CONNECT, ambiguous framing)
    # The same connections by reason, a key of http1.REASONS: a closed set, so bounded.
    unframed_reasons: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class CompareCounters:
    """A gor:// target with comparison on: production's responses (GoReplay type 2)."""

    sent: int = 0  # handed to the connection that carried the request
    dropped: int = 0  # recorded but not sent: the target was behind, or the connection gone


@dataclass(slots=True)
class TargetCounters:
    """One duplex target. A request is counted once, in exactly one of the three."""

    mirrored: int = 0  # handed whole to a connection of the target
    dropped: int = 0  # the target was behind (buffer full) or fell behind mid-request
    failed: int = 0  # the target was down, refused, or its connection broke mid-request
    compare: CompareCounters | None = None  # gor:// targets with comparison on


def stats_lines(
    at: str, relay: RelayCounters, targets: Sequence[tuple[str, TargetCounters]]
) -> list[dict[str, LogValue]]:
    """One line per target (a single line when there is one target, the usual case).

    Each line repeats the primary-path totals so that any one line can be read alone;
    `unframed_<reason>` keys follow `unframed` for the reasons seen, in REASONS order.
    A target with comparison on adds `compare_sent` and `compare_dropped`.
    """
    base: dict[str, LogValue] = {
        "at": at,
        "connections": relay.connections,
        "open": relay.open,
        "requests": relay.requests,
        "unframed": relay.unframed,
    }
    for reason in REASONS:
        if reason in relay.unframed_reasons:
            base[f"unframed_{reason}"] = relay.unframed_reasons[reason]
    if not targets:
        return [base]
    return [_target_line(base, name, counters) for name, counters in targets]


def _target_line(
    base: dict[str, LogValue], name: str, counters: TargetCounters
) -> dict[str, LogValue]:
    line: dict[str, LogValue] = {
        **base,
        "target": name,
        "mirrored": counters.mirrored,
        "dropped": counters.dropped,
        "failed": counters.failed,
    }
    compare = counters.compare
    if compare is not None:
        line["compare_sent"] = compare.sent
        line["compare_dropped"] = compare.dropped
    return line
