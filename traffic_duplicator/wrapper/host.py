"""The process table the supervisor acts on: `Host`, and `OsHost`, the real one.

The supervisor decides; a host carries its decisions out and answers its questions:
start a child in its own session, reap whatever exited, signal a process group, look at a
port, read the clock. The tests drive the same supervisor with a fake table and a clock
they advance by hand (tests/wrapper/fake_host.py); here every call is the real system call.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from typing import Protocol

from traffic_duplicator.wrapper.output import STDERR, STDOUT, LinePump
from traffic_duplicator.wrapper.probes import accepts, has_listener
from traffic_duplicator.wrapper.process import ChildSpec


class Host(Protocol):
    """What the supervisor needs from the system; every method returns at once."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def spawn(self, spec: ChildSpec) -> int:
        """Start `spec` in a new session and return its pid (= its group); OSError if exec fails."""
        ...

    def reap(self) -> list[tuple[int, int]]:
        """(pid, waitpid status) of every child that exited, orphans included (we may be PID 1)."""
        ...

    def signal_group(self, pgid: int, sig: int) -> bool:
        """Signal a whole process group; False if it is gone (or no longer ours)."""
        ...

    def group_exists(self, pgid: int) -> bool: ...

    def accepts(self, port: int) -> bool:
        """Whether something accepts TCP connections on the loopback port right now."""
        ...

    def has_listener(self, port: int) -> bool:
        """Whether a listening socket holds the loopback port (no connection is made)."""
        ...


class OsHost:
    """The real thing: subprocess, waitpid(-1), killpg and loopback probes."""

    def __init__(self) -> None:
        self._popens: dict[int, subprocess.Popen[bytes]] = {}
        self._pumps: list[LinePump] = []

    def now(self) -> float:
        return time.monotonic()

    def spawn(self, spec: ChildSpec) -> int:
        piped = subprocess.PIPE if spec.prefix_output else None
        popen = subprocess.Popen(
            list(spec.argv),
            env=dict(spec.env),
            # Engines never read stdin; the app keeps ours, as it would alone.
            stdin=subprocess.DEVNULL if spec.prefix_output else None,
            stdout=piped,
            stderr=piped,
            start_new_session=True,
        )
        self._popens[popen.pid] = popen
        if popen.stdout is not None and popen.stderr is not None:
            prefix = f"{spec.name} | "
            pumps = [LinePump(popen.stdout, STDOUT, prefix), LinePump(popen.stderr, STDERR, prefix)]
            for pump in pumps:
                pump.start()
            self._pumps.extend(pumps)
        return popen.pid

    def reap(self) -> list[tuple[int, int]]:
        reaped: list[tuple[int, int]] = []
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return reaped
            if pid == 0:
                return reaped
            popen = self._popens.pop(pid, None)
            if popen is not None:
                # We reaped it with waitpid(-1); tell Popen so it does not try again.
                popen.returncode = os.waitstatus_to_exitcode(wait_status)
            reaped.append((pid, wait_status))

    def signal_group(self, pgid: int, sig: int) -> bool:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:
            # The group id now belongs to someone else's processes: not ours to signal.
            return False
        return True

    def group_exists(self, pgid: int) -> bool:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, 0)
            return True
        return False

    def accepts(self, port: int) -> bool:
        return accepts(port)

    def has_listener(self, port: int) -> bool:
        return has_listener(port)

    def join_output(self, timeout: float) -> None:
        """Give the engines' output pumps `timeout` seconds, all together, for their last lines."""
        deadline = time.monotonic() + timeout
        for pump in self._pumps:
            pump.join(max(0.0, deadline - time.monotonic()))
