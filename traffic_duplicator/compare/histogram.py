"""A small, mergeable latency histogram with log-linear buckets, and its one-word encoding.

Latencies are counted in whole microseconds. Values below 32 µs get a bucket each; above,
every power of two is split into 16 equal buckets, as HdrHistogram does with 4 bits of
sub-bucket precision. A bucket is at most 1/16 as wide as its lower bound, so a percentile
read as its bucket's midpoint is within 1/32 (3.2 %) of the true value. Histograms from
many dynos and intervals merge by adding counts, which is why results are logged this way
rather than as precomputed percentiles (those cannot be merged).

Written here rather than taken from the `hdrhistogram` package because the replayer runs
on the dyno with the standard library only.

Encoding (a logfmt-safe word): `h1;` then comma-separated buckets, each the index's
distance from the previous bucket (the first is absolute), followed by `*count` when the
count is not 1. `h1;40*3,2,1*12` holds buckets 40 (3), 42 (1) and 43 (12).
"""

from __future__ import annotations

import math

SUB_BITS = 4
SUB_BUCKETS = 1 << SUB_BITS  # buckets per power of two
LINEAR_LIMIT = 2 * SUB_BUCKETS  # below this many µs, each value has its own bucket
MAX_MICROS = (1 << 40) - 1  # ~12.7 days: anything longer is clamped
PREFIX = "h1;"
# Relative error of a percentile estimate: half a bucket's width over its lower bound.
RELATIVE_ERROR = 1 / (2 * SUB_BUCKETS)


def bucket_index(micros: int) -> int:
    """The bucket of a latency in whole microseconds (clamped to 0 … MAX_MICROS)."""
    value = min(max(micros, 0), MAX_MICROS)
    if value < LINEAR_LIMIT:
        return value
    shift = value.bit_length() - (SUB_BITS + 1)
    return (shift + 1) * SUB_BUCKETS + (value >> shift) - SUB_BUCKETS


def bucket_bounds(index: int) -> tuple[int, int]:
    """The smallest and largest microsecond values that fall in bucket `index`."""
    if index < LINEAR_LIMIT:
        return index, index
    shift = index // SUB_BUCKETS - 1
    low = (SUB_BUCKETS + index % SUB_BUCKETS) << shift
    return low, low + (1 << shift) - 1


class Histogram:
    """Counts of latencies by bucket; see the module docstring."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0

    def record(self, seconds: float, count: int = 1) -> None:
        index = bucket_index(round(seconds * 1e6))
        self.counts[index] = self.counts.get(index, 0) + count
        self.total += count

    def merge(self, other: Histogram) -> None:
        for index, count in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + count
        self.total += other.total

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 < q ≤ 1) in seconds by nearest rank, or None when empty."""
        if not self.total:
            return None
        rank = max(1, math.ceil(q * self.total))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                low, high = bucket_bounds(index)
                return (low + high) / 2 / 1e6
        raise AssertionError("unreachable: counts add up to total")

    def encode(self) -> str:
        parts = []
        previous = 0
        for index in sorted(self.counts):
            count = self.counts[index]
            delta = index - previous
            parts.append(f"{delta}*{count}" if count != 1 else str(delta))
            previous = index
        return PREFIX + ",".join(parts)

    @classmethod
    def decode(cls, text: str) -> Histogram:
        """Read `encode`'s output; raises ValueError on anything else."""
        if not text.startswith(PREFIX):
            raise ValueError(f"histogram {text[:20]!r} does not start with {PREFIX!r}")
        histogram = cls()
        index = 0
        body = text[len(PREFIX) :]
        for token in body.split(",") if body else ():
            delta, star, count = token.partition("*")
            if not delta.isdigit() or (star and not count.isdigit()):
                raise ValueError(f"bad histogram bucket {token[:20]!r}")
            index += int(delta)
            number = int(count) if count else 1
            if bucket_bounds(index)[0] > MAX_MICROS:
                raise ValueError(f"histogram bucket {index} is out of range")
            histogram.counts[index] = histogram.counts.get(index, 0) + number
            histogram.total += number
        return histogram
