"""Capped exponential backoff, written once for the whole package; pure, times are given.

A run of failures waits `base`, then `base * factor`, ... up to `cap`, and a success (or
whatever the caller counts as one, such as a long enough uptime) starts the run over. The
callers choose the figures and the clock:

- the wrapper's restarts (`wrapper/restarts.py`): a crashed replayer, seconds to a 30 s cap,
  on the supervisor's clock;
- the proxy's mirror targets (`proxy/health.py`): reconnecting to a refusing target, 50 ms
  to a 1 s cap, on the event loop's clock;
- the replayer's HTTP outputs (`replay/output_http.py`): reconnecting to a destination,
  100 ms to a 2 s cap, on the event loop's clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# 2.0**62 times any positive base is past every cap: larger exponents only risk overflow.
_MAX_EXPONENT = 62


@dataclass(frozen=True)
class BackoffPolicy:
    """The waits of a run of failures, in seconds: `base * factor**n`, never over `cap`."""

    base: float  # the wait after the first failure; 0 retries at once, always
    cap: float  # no wait is longer
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        """The wait after failure number `failures + 1` of a run (`failures` before it)."""
        return min(self.cap, self.base * self.factor ** min(failures, _MAX_EXPONENT))


class Backoff:
    """One run of failures under a policy: how many so far, and when the next try is due."""

    __slots__ = ("failures", "policy", "retry_at")

    def __init__(self, policy: BackoffPolicy) -> None:
        self.policy = policy
        self.failures = 0  # consecutive failures
        self.retry_at = -math.inf  # no try before this time; any time after a success

    def failure(self, now: float) -> float:
        """Record a failure at `now`; return the wait before the next try (also `retry_at`)."""
        delay = self.policy.delay(self.failures)
        self.failures += 1
        self.retry_at = now + delay
        return delay

    def success(self) -> None:
        """The run is over: the next failure waits `base` again, and a try is due at once."""
        self.failures = 0
        self.retry_at = -math.inf

    def ready(self, now: float) -> bool:
        """True when a try at `now` would not cut the current wait short."""
        return now >= self.retry_at
