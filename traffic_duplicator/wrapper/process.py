"""One supervised child as data: its spec, its state and the one place that state changes.

Nothing here touches the operating system. The host (`host.OsHost`, or a fake table in
the tests) starts, signals and reaps processes; the supervisor records here what happened.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum


class ChildState(Enum):
    STOPPED = "stopped"  # not running and nothing scheduled (before the first start, too)
    RUNNING = "running"  # started, not yet reaped
    STOPPING = "stopping"  # sent SIGTERM by us (or by the platform), not yet reaped
    BACKOFF = "backoff"  # crashed; a restart is scheduled
    EXITED = "exited"  # reaped, and will not be started again
    FATAL = "fatal"  # crashed too often; we gave up on it


# Every state change goes through Child.change, which refuses anything not listed here.
_TRANSITIONS: dict[ChildState, frozenset[ChildState]] = {
    # From STOPPED or BACKOFF straight to BACKOFF or FATAL: the exec itself failed.
    ChildState.STOPPED: frozenset(
        {ChildState.RUNNING, ChildState.EXITED, ChildState.BACKOFF, ChildState.FATAL}
    ),
    ChildState.RUNNING: frozenset(
        {ChildState.STOPPING, ChildState.BACKOFF, ChildState.EXITED, ChildState.FATAL}
    ),
    ChildState.STOPPING: frozenset({ChildState.EXITED}),
    # A shutdown cancels a scheduled restart.
    ChildState.BACKOFF: frozenset(
        {ChildState.RUNNING, ChildState.STOPPED, ChildState.BACKOFF, ChildState.FATAL}
    ),
    ChildState.EXITED: frozenset(),
    ChildState.FATAL: frozenset(),
}


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    port: int
    # Engines: output through pipes, prefixed. The app: the wrapper's own fds, untouched.
    prefix_output: bool


def exit_status(wait_status: int) -> int:
    """A waitpid status as a shell reports it: the code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def signal_name(status: int) -> str | None:
    """The signal behind a 128+N status, e.g. SIGKILL for 137."""
    if status <= 128:
        return None
    try:
        return signal.Signals(status - 128).name
    except ValueError:
        return None


class Child:
    """The running instance (if any) of one spec, and its state."""

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.state = ChildState.STOPPED
        self.pid: int | None = None
        self.started_at = 0.0
        self.status: int | None = None  # the last exit status, shell style
        self.restart_at = 0.0
        self.starts = 0
        # Seen listening on its port since its last start: closing it later means stopping.
        self.listened = False
        # Sent the second SIGTERM that tells an engine to stop waiting (its budget is spent).
        self.hurried = False

    @property
    def name(self) -> str:
        return self.spec.name

    def change(self, new: ChildState) -> None:
        """The one place a state changes; an impossible transition is a bug, not a user error."""
        if new not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"{self.name}: {self.state.value} -> {new.value} is not allowed")
        self.state = new

    @property
    def alive(self) -> bool:
        """Started and not yet reaped."""
        return self.state in (ChildState.RUNNING, ChildState.STOPPING)

    def started(self, pid: int, now: float) -> None:
        """Record a start the host made (in a new session, so `pid` is also its group)."""
        self.pid = pid
        self.started_at = now
        self.status = None
        self.listened = False
        self.hurried = False
        self.starts += 1
        self.change(ChildState.RUNNING)

    def reaped(self, status: int) -> None:
        """Record the exit the supervisor reaped; the state change is the supervisor's call."""
        self.status = status
