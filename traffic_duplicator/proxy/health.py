"""A mirror target's health: may it get new connections now? One explicit state machine.

- `UP`: connections are opened as the pool needs them. A target starts here: it is
  presumed reachable until an attempt fails.
- `BACKING_OFF`: an attempt failed, or the target reset a connection. No attempt before
  the backoff's `retry_at`; a request that finds no free connection fails at once.
- `PROBING`: the backoff is over and one attempt, the probe, is in flight. Requests queue
  on it; while a stream owns it they fail at once. One probe at a time, so a dead target
  costs one connection attempt per backoff delay, however busy the app is.
- `RESETTING`: a stream was reset because the target fell behind. No new connection
  before `reopen_at`: a target that stalls must not get a fresh connection for every
  large request. Requests use any connection no stream owns, even one that is behind,
  or are dropped.

Every change goes through `transition`, a table: an event a state has no entry for
leaves the state as it is (a reset while the target is down changes nothing, for
example). Nothing here raises: the table is the whole policy. Times are given, never
read, so the machine is tested with plain numbers.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from traffic_duplicator.backoff import Backoff, BackoffPolicy

if TYPE_CHECKING:
    from traffic_duplicator.proxy.connection import MirrorConnection

# The cap keeps "target is back" to "mirroring again" under 2 s (one cap plus a connect),
# while a dead target still costs at most one connection attempt a second.
RECONNECT_BACKOFF = BackoffPolicy(base=0.05, cap=1.0)
# After a stream was reset for falling behind, no new connection is opened for this long.
REOPEN_AFTER_RESET = 0.25


class TargetState(enum.Enum):
    UP = "up"
    BACKING_OFF = "backing_off"
    PROBING = "probing"
    RESETTING = "resetting"


class Event(enum.Enum):
    FAILED = "failed"  # an attempt failed or timed out, or the target reset a connection
    PROBE = "probe"  # the backoff is over: one attempt was opened
    PROBE_LOST = "probe_lost"  # the probe failed, or was cut (a reset, a client gone)
    CONNECTED = "connected"  # some connection got through
    RESET = "reset"  # a stream was cut for falling behind
    REOPEN = "reopen"  # the pause after a reset is over


_UP, _BACKING_OFF, _PROBING, _RESETTING = TargetState

_NEXT: dict[tuple[TargetState, Event], TargetState] = {
    (_UP, Event.FAILED): _BACKING_OFF,
    (_UP, Event.RESET): _RESETTING,
    # A connection opened before the failure may still fail (the wait grows) or get
    # through (the target is back).
    (_BACKING_OFF, Event.FAILED): _BACKING_OFF,
    (_BACKING_OFF, Event.PROBE): _PROBING,
    (_BACKING_OFF, Event.CONNECTED): _UP,
    # Another connection failed: the probe stands, and the wait after it grows.
    (_PROBING, Event.FAILED): _PROBING,
    # Once the probe is gone, the next request may open another one if the wait is over.
    (_PROBING, Event.PROBE_LOST): _BACKING_OFF,
    (_PROBING, Event.CONNECTED): _UP,
    (_RESETTING, Event.FAILED): _BACKING_OFF,
    (_RESETTING, Event.RESET): _RESETTING,  # the pause starts again
    (_RESETTING, Event.REOPEN): _UP,
}


def transition(state: TargetState, event: Event) -> TargetState:
    """The state after `event`; an event `state` has no entry for leaves it unchanged."""
    return _NEXT.get((state, event), state)


class TargetHealth:
    """One target's state, its backoff, its probe and the end of a reset's pause."""

    __slots__ = ("backoff", "probe", "reopen_at", "state")

    def __init__(self, policy: BackoffPolicy = RECONNECT_BACKOFF) -> None:
        self.state = TargetState.UP
        self.backoff = Backoff(policy)
        self.probe: MirrorConnection | None = None  # set only while PROBING
        self.reopen_at = 0.0  # RESETTING: no new connection before this loop time

    def _step(self, event: Event) -> None:
        """The one place the state changes."""
        self.state = transition(self.state, event)
        if self.state is not TargetState.PROBING:
            self.probe = None

    @property
    def down(self) -> bool:
        """Backing off or probing: new connections wait for the backoff."""
        return self.state is TargetState.BACKING_OFF or self.state is TargetState.PROBING

    def may_probe(self, now: float) -> bool:
        """Down, no attempt in flight, and the backoff's wait is over."""
        return self.state is TargetState.BACKING_OFF and self.backoff.ready(now)

    def probing(self, conn: MirrorConnection) -> None:
        """`conn` is the one attempt while the target is down."""
        self._step(Event.PROBE)
        if self.state is TargetState.PROBING:
            self.probe = conn

    def paused(self, now: float) -> bool:
        """Still in the pause after a reset; once it is over, the target is up again."""
        if self.state is not TargetState.RESETTING:
            return False
        if now < self.reopen_at:
            return True
        self._step(Event.REOPEN)
        return False

    def failed(self, now: float) -> float:
        """An attempt failed or a connection was reset at `now`: the wait before the next."""
        delay = self.backoff.failure(now)
        self._step(Event.FAILED)
        return delay

    def connected(self) -> int | None:
        """A connection got through: if the target was down, the attempts it took."""
        if not self.down:
            return None
        attempts = self.backoff.failures + 1
        self.backoff.success()
        self._step(Event.CONNECTED)
        return attempts

    def forget(self, conn: MirrorConnection) -> None:
        """`conn` is gone; if it was the probe, the next request may open another."""
        if conn is self.probe:
            self._step(Event.PROBE_LOST)

    def reset(self, now: float) -> None:
        """A stream was cut for falling behind at `now` (ignored while down)."""
        self._step(Event.RESET)
        if self.state is TargetState.RESETTING:
            self.reopen_at = now + REOPEN_AFTER_RESET
