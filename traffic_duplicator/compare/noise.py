"""Whether a candidate's differences exceed the noise a baseline measures (Diffy's rule).

Diffy sends each request to a candidate (new code), a primary and a secondary (both the
known-good code). Primary-vs-candidate differences are raw; primary-vs-secondary
differences are noise. A field is reported only when, with R raw and N noise differences
out of `total` requests (twitter/diffy `analysis/JoinedDifferences.scala`):

- R > N;
- |R - N| / (R + N) > the relative threshold (`-threshold.relative`, default 20 %);
- |R - N| / total > the absolute threshold (`-threshold.absolute`, default 0.03 %).

Here production plays the primary, the baseline output the secondary. A candidate and
the baseline may not compare the same number of requests (sampling, drops), so R and N
are rates over each one's own total; with equal totals the rule is exactly Diffy's.

Latency has no Diffy rule. A candidate's route is flagged as slower when its median's
shift from production exceeds the baseline's shift by more than both thresholds below,
so an environment that is slower everywhere (smaller dynos) cancels out. Without a
baseline, latency is reported but never flagged: two environments always differ in speed.
"""

from __future__ import annotations

from dataclasses import dataclass

RELATIVE_THRESHOLD = 0.20
ABSOLUTE_THRESHOLD = 0.0003
LATENCY_ABSOLUTE_THRESHOLD = 0.010  # seconds
LATENCY_RELATIVE_THRESHOLD = 0.20
LATENCY_MIN_SAMPLES = 5


@dataclass(frozen=True)
class Rate:
    """`differences` out of `total` compared responses."""

    differences: int
    total: int

    @property
    def value(self) -> float:
        return self.differences / self.total if self.total else 0.0


@dataclass(frozen=True)
class Thresholds:
    relative: float = RELATIVE_THRESHOLD
    absolute: float = ABSOLUTE_THRESHOLD
    latency_absolute: float = LATENCY_ABSOLUTE_THRESHOLD
    latency_relative: float = LATENCY_RELATIVE_THRESHOLD


DEFAULT_THRESHOLDS = Thresholds()


def exceeds_noise(
    candidate: Rate, baseline: Rate | None, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> bool:
    """Diffy's rule (module docstring); without a baseline any difference counts."""
    if baseline is None:
        return candidate.differences > 0
    raw, noise = candidate.value, baseline.value
    if raw <= noise:
        return False
    return (raw - noise) / (raw + noise) > thresholds.relative and (
        raw - noise
    ) > thresholds.absolute


@dataclass(frozen=True)
class Latency:
    """Medians in seconds, over `samples` comparisons, of production's and a shadow's latency."""

    production: float
    shadow: float
    samples: int

    @property
    def shift(self) -> float:
        return self.shadow - self.production


def slower_than_noise(
    candidate: Latency, baseline: Latency | None, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> bool:
    """True when the candidate's shift exceeds the baseline's (module docstring)."""
    if baseline is None or min(candidate.samples, baseline.samples) < LATENCY_MIN_SAMPLES:
        return False
    excess = candidate.shift - baseline.shift
    return excess > thresholds.latency_absolute and excess > (
        thresholds.latency_relative * baseline.shadow
    )
