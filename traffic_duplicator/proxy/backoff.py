"""Capped exponential backoff between connection attempts to a target that refuses."""

from __future__ import annotations

# The cap keeps "target is back" to "mirroring again" under 2 s (one cap plus a connect),
# while a dead target still costs at most one connection attempt a second.
INITIAL_DELAY = 0.05
MAX_DELAY = 1.0
FACTOR = 2.0


class Backoff:
    """Delays that double from `initial` to `cap` while attempts fail, reset by a success."""

    __slots__ = ("_cap", "_delay", "_initial", "failures")

    def __init__(self, initial: float = INITIAL_DELAY, cap: float = MAX_DELAY) -> None:
        self._initial = initial
        self._cap = cap
        self._delay = initial
        self.failures = 0  # consecutive failed attempts

    def failure(self) -> float:
        """Record a failed attempt; return how long to wait before the next one."""
        delay = self._delay
        self._delay = min(self._delay * FACTOR, self._cap)
        self.failures += 1
        return delay

    def success(self) -> None:
        """Record a successful attempt: the next failure waits `initial` again."""
        self._delay = self._initial
        self.failures = 0
