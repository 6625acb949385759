"""When to restart a crashed child, and when to give up: pure, driven by the times given."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from traffic_duplicator.backoff import Backoff, BackoffPolicy

# The replayer is off the production path: retry forever, but never faster than this.
REPLAYER_BACKOFF_CAP = 30.0
# A child that stayed up this long was healthy; its next crash starts the backoff afresh.
HEALTHY_UPTIME = 60.0
# The proxy is the production path: restart at once, and after this many crashes within
# the window let the platform restart the whole dyno instead.
PROXY_CRASH_LIMIT = 5
PROXY_CRASH_WINDOW = 60.0


@dataclass(frozen=True)
class RestartPolicy:
    """How one child is restarted: a capped doubling backoff and an optional crash limit."""

    backoff_base: float  # delay before the first restart; 0 restarts at once
    backoff_cap: float
    healthy_uptime: float = HEALTHY_UPTIME
    crash_limit: int | None = None  # give up after this many crashes within crash_window
    crash_window: float = PROXY_CRASH_WINDOW

    @property
    def backoff(self) -> BackoffPolicy:
        """The package's one backoff with these figures (traffic_duplicator/backoff.py)."""
        return BackoffPolicy(base=self.backoff_base, cap=self.backoff_cap)


def replayer_policy(backoff_base: float) -> RestartPolicy:
    return RestartPolicy(backoff_base=backoff_base, backoff_cap=REPLAYER_BACKOFF_CAP)


def proxy_policy() -> RestartPolicy:
    return RestartPolicy(backoff_base=0.0, backoff_cap=0.0, crash_limit=PROXY_CRASH_LIMIT)


@dataclass(frozen=True)
class RestartDecision:
    give_up: bool
    delay: float  # seconds to wait before the restart (meaningless when giving up)
    crashes_in_window: int


class RestartTracker:
    """Counts one child's crashes and turns each into a restart delay or a decision to give up."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self._backoff = Backoff(policy.backoff)
        self._crash_times: deque[float] = deque()

    def record_crash(self, started_at: float, exited_at: float) -> RestartDecision:
        policy = self.policy
        if exited_at - started_at >= policy.healthy_uptime:
            self._backoff.success()
        self._crash_times.append(exited_at)
        while self._crash_times and self._crash_times[0] <= exited_at - policy.crash_window:
            self._crash_times.popleft()
        crashes = len(self._crash_times)
        if policy.crash_limit is not None and crashes >= policy.crash_limit:
            return RestartDecision(give_up=True, delay=0.0, crashes_in_window=crashes)
        delay = self._backoff.failure(exited_at)
        return RestartDecision(give_up=False, delay=delay, crashes_in_window=crashes)
