"""One supervised child: its own process group, its state, and its prefixed output.

The supervisor owns reaping (`os.waitpid(-1)`, so that orphans are reaped too when the
wrapper is PID 1) and tells each child when it exited; a child never waits for itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import IO

# A line longer than this is passed on in pieces, so a child cannot make us buffer without end.
MAX_LINE = 64 * 1024
STDOUT = 1
STDERR = 2

# One lock per output fd keeps each prefixed line in a single write.
_write_locks: dict[int, threading.Lock] = {}
_write_locks_guard = threading.Lock()


def _write_lock(fd: int) -> threading.Lock:
    with _write_locks_guard:
        return _write_locks.setdefault(fd, threading.Lock())


class ChildState(Enum):
    STOPPED = "stopped"  # not running and nothing scheduled (before the first start, too)
    RUNNING = "running"  # started, not yet reaped
    STOPPING = "stopping"  # sent SIGTERM by us, not yet reaped
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class LinePump(threading.Thread):
    """Copies a child's pipe to one of our fds, a prefix before every line, flushed per line."""

    def __init__(self, source: IO[bytes], fd: int, prefix: str) -> None:
        super().__init__(name=f"pump {prefix.strip()} fd{fd}", daemon=True)
        self._source = source
        self._fd = fd
        self._prefix = prefix

    def run(self) -> None:
        with self._source:
            while True:
                try:
                    line = self._source.readline(MAX_LINE)
                except (OSError, ValueError):
                    return
                if not line:
                    return
                text = self._prefix + line.decode("utf-8", "replace")
                if not text.endswith("\n"):
                    text += "\n"
                try:
                    with _write_lock(self._fd):
                        _write_all(self._fd, text.encode("utf-8"))
                except OSError:
                    # Our own output is gone (a closed pipe): keep draining so the child
                    # never blocks on a full pipe.
                    continue


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
        self._popen: subprocess.Popen[bytes] | None = None
        self._pumps: list[LinePump] = []

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

    def start(self, now: float) -> int:
        """Start the child in a new session (so a new process group); OSError if exec fails."""
        piped = subprocess.PIPE if self.spec.prefix_output else None
        popen = subprocess.Popen(
            list(self.spec.argv),
            env=dict(self.spec.env),
            # Engines never read stdin; the app keeps ours, as it would alone.
            stdin=subprocess.DEVNULL if self.spec.prefix_output else None,
            stdout=piped,
            stderr=piped,
            start_new_session=True,
        )
        self._popen = popen
        self.pid = popen.pid
        self.started_at = now
        self.status = None
        self.listened = False
        self.starts += 1
        self.change(ChildState.RUNNING)
        if popen.stdout is not None and popen.stderr is not None:
            prefix = f"{self.name} | "
            self._pumps = [
                LinePump(popen.stdout, STDOUT, prefix),
                LinePump(popen.stderr, STDERR, prefix),
            ]
            for pump in self._pumps:
                pump.start()
        return popen.pid

    def reaped(self, status: int) -> None:
        """Record the exit the supervisor reaped; the state change is the supervisor's call."""
        self.status = status
        if self._popen is not None:
            # We reaped it with waitpid(-1); tell Popen so it does not try again.
            self._popen.returncode = status
        self._popen = None

    def signal_group(self, sig: int) -> bool:
        """Signal the child's whole process group; False if the group is gone."""
        if self.pid is None:
            return False
        return signal_group(self.pid, sig)

    def join_output(self, timeout: float) -> None:
        """Wait a little for the last lines of output to be copied."""
        for pump in self._pumps:
            pump.join(timeout)


def signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # The group id now belongs to someone else's processes: not ours to signal.
        return False
    return True


def group_exists(pgid: int) -> bool:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, 0)
        return True
    return False
