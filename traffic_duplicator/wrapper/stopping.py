"""The one graceful shutdown: three stages in order under one deadline, then SIGKILL.

The proxy drains first (the app must still be up to answer what it relays), then the app
stops, then the replayer flushes what the proxy sent it. Each stage gets the time left
when it starts, less what the stages after it are kept (`budget.ShutdownBudget`); an
engine still at work when its stage must end gets a second SIGTERM ("stop waiting"), and
the next stage starts. At the deadline every group still there is SIGKILLed, ours or left
over.

Each child gets at most one SIGTERM to start its stage (and an engine one more to hurry),
never a SIGINT, and none at all once it has exited. Heroku signals every process of the
dyno at once, and our engines take a second signal as "hurry"; so after a shutdown signal,
a child that was seen listening and has closed its port is taken to be stopping already
and is not sent the first SIGTERM again.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from traffic_duplicator.logs import EventLog
from traffic_duplicator.wrapper.budget import ShutdownBudget
from traffic_duplicator.wrapper.host import Host
from traffic_duplicator.wrapper.process import Child, ChildState

# After a shutdown signal, how long a child that listened may take to show, by closing its
# port, that the platform signalled it too (Heroku signals every process at once). Our
# engines treat a second signal as "hurry", so we must not repeat the platform's SIGTERM.
SIGNAL_GRACE = 0.5
# While stopping, how often to look at process groups whose leader is gone (no SIGCHLD),
# and at the stages' end-by times.
STOP_POLL_INTERVAL = 0.1
# After SIGKILL, how long to wait for the kernel to let us reap.
KILL_GRACE = 2.0
# The children that read a second SIGTERM as "stop waiting": our engines. The app is never
# hurried; a second SIGTERM means nothing standard to a web server.
HURRIED = frozenset({"proxy", "replayer"})


def format_seconds(value: float) -> str:
    return f"{value:.3g}s" if value < 10 else f"{value:.0f}s"


def stop_child(child: Child, host: Host, log: EventLog) -> None:
    """Ask a child to stop gracefully: one SIGTERM to its group, never repeated."""
    if child.state is ChildState.BACKOFF:
        child.change(ChildState.STOPPED)
    if child.state is not ChildState.RUNNING or child.pid is None:
        return
    child.change(ChildState.STOPPING)
    host.signal_group(child.pid, signal.SIGTERM)
    log.event(at="stop", process=child.name, pid=child.pid, signal="SIGTERM")


class LeftoverGroups:
    """Process groups whose leader we reaped while members live on (workers, a shell's jobs).

    Nothing supervises them any more, so they are asked to stop at once, watched (no
    SIGCHLD tells us when they are gone), and SIGKILLed at the shutdown deadline.
    """

    def __init__(self, host: Host, log: EventLog) -> None:
        self._host = host
        self._log = log
        self._groups: dict[int, str] = {}

    def adopt(self, pgid: int, name: str) -> None:
        self._groups[pgid] = name
        self._host.signal_group(pgid, signal.SIGTERM)

    def any_left(self) -> bool:
        for pgid in [p for p in self._groups if not self._host.group_exists(p)]:
            del self._groups[pgid]
        return bool(self._groups)

    def kill(self) -> None:
        if not self.any_left():
            return
        for pgid, name in self._groups.items():
            if self._host.signal_group(pgid, signal.SIGKILL):
                self._log.event(at="kill", process=name, pgid=pgid, signal="SIGKILL", leftover=True)


@dataclass(frozen=True)
class Crew:
    """What a shutdown acts on: the children in the order they stop, and the groups they left."""

    stages: tuple[Child, ...]
    leftovers: LeftoverGroups
    host: Host
    log: EventLog


class Shutdown:
    """One shutdown in progress; `step()` acts on the time and the children's states."""

    def __init__(self, crew: Crew, *, timeout: float, signalled: bool) -> None:
        self.stages = crew.stages
        self.leftovers = crew.leftovers
        self.host = crew.host
        self.log = crew.log
        self.budget = ShutdownBudget(timeout)
        self.began = self.host.now()
        self.deadline = self.began + timeout
        # A platform signal may have reached the children too (see the module docstring).
        self.signalled = signalled
        self._kill_deadline: float | None = None

    def step(self) -> bool:
        """Start, hurry or kill whatever is due; True once everything is gone (or given up)."""
        now = self.host.now()
        if self._kill_deadline is None and now >= self.deadline:
            self._kill_everything(now)
        if self._kill_deadline is not None:
            return not self._anything_left() or now >= self._kill_deadline
        previous_over = True
        for child in self.stages:
            end_by = self.began + self.budget.end_by(child.name)
            if previous_over:
                self._advance(child, now, end_by)
            # A stage is over when its child is gone (and the one before is over), or when
            # its time is up: then the next starts even if this one is still finishing.
            previous_over = now >= end_by or (previous_over and not child.alive)
        return not self._anything_left()

    def timeout(self) -> float:
        """How long the loop may sleep: poll, but never past the kill time."""
        now = self.host.now()
        until = self._kill_deadline if self._kill_deadline is not None else self.deadline
        return min(STOP_POLL_INTERVAL, until - now)

    def _advance(self, child: Child, now: float, end_by: float) -> None:
        if child.state is ChildState.RUNNING:
            self._stop_unless_stopping(child, now)
        elif (
            child.state is ChildState.STOPPING
            and now >= end_by
            and child.name in HURRIED
            and not child.hurried
            and child.pid is not None
        ):
            child.hurried = True
            self.host.signal_group(child.pid, signal.SIGTERM)
            self.log.event(
                at="hurry", process=child.name, pid=child.pid, signal="SIGTERM",
                after=format_seconds(now - self.began),
            )  # fmt: skip

    def _stop_unless_stopping(self, child: Child, now: float) -> None:
        """SIGTERM a child, unless it shows it got the platform's SIGTERM already."""
        if self.signalled and child.listened:
            if not self.host.has_listener(child.spec.port):
                # It was seen listening and has closed its port since: the platform signalled
                # it too and it is draining on its own; a second SIGTERM would cut that short.
                child.change(ChildState.STOPPING)
                self.log.event(
                    at="stop", process=child.name, pid=child.pid, signal="none",
                    reason="already-stopping",
                )  # fmt: skip
                return
            if now < self.began + SIGNAL_GRACE:
                return  # give it a moment to show it was signalled too
        stop_child(child, self.host, self.log)

    def _anything_left(self) -> bool:
        return self.leftovers.any_left() or any(c.alive for c in self.stages)

    def _kill_everything(self, now: float) -> None:
        """The deadline passed: SIGKILL every group still there, ours or left over."""
        self._kill_deadline = now + KILL_GRACE
        for child in self.stages:
            if not child.alive or child.pid is None:
                continue
            if self.host.signal_group(child.pid, signal.SIGKILL):
                self.log.event(
                    at="kill", process=child.name, pid=child.pid, signal="SIGKILL",
                    after=format_seconds(self.budget.timeout),
                )  # fmt: skip
        self.leftovers.kill()
