"""The supervision loop: start order, restarts, and one graceful shutdown.

The wrapper moves through explicit phases (`Phase`); each child has its own state
(`process.ChildState`). Signal handlers only record what arrived; the loop wakes on a
wakeup fd (SIGCHLD, SIGTERM, SIGINT, SIGHUP), reaps every exited process with
`waitpid(-1)` (so orphans are reaped when we are PID 1), then acts.

Shutdown, whatever started it, is one sequence under one deadline: SIGTERM the proxy and
wait for it to drain, then the app, then the replayer (which flushes); SIGKILL whatever is
left at the deadline. Each child gets at most one SIGTERM from us, never a SIGINT, and none
at all once it has exited. Heroku signals every process of the dyno at once, and our engines
take a second signal as "stop draining now"; so after a shutdown signal, a child that was
seen listening and has closed its port is taken to be draining already and is left alone.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import socket
import time
from dataclasses import dataclass
from enum import Enum
from types import FrameType

from traffic_duplicator.logs import EventLog, LogValue
from traffic_duplicator.wrapper.ports import LOOPBACK
from traffic_duplicator.wrapper.probes import accepts, has_listener
from traffic_duplicator.wrapper.process import (
    Child,
    ChildSpec,
    ChildState,
    exit_status,
    group_exists,
    signal_group,
    signal_name,
)
from traffic_duplicator.wrapper.restarts import RestartPolicy, RestartTracker

# How often to look for the app's port while it boots; a refused loopback connect is cheap.
APP_PROBE_INTERVAL = 0.05
# After a shutdown signal, how long a child that listened may take to show, by closing its
# port, that the platform signalled it too (Heroku signals every process at once). Our
# engines treat a second signal as "hurry", so we must not repeat the platform's SIGTERM.
SIGNAL_GRACE = 0.5
# How often to say we are still waiting for the app (Heroku gives a web dyno 60 s to bind).
BOOT_NOTICE_INTERVAL = 10.0
# While stopping, how often to look at process groups whose leader is gone (no SIGCHLD).
STOP_POLL_INTERVAL = 0.1
# After SIGKILL, how long to wait for the kernel to let us reap.
KILL_GRACE = 2.0
# The loop wakes at least this often even with nothing scheduled.
IDLE_INTERVAL = 5.0
# Time given to the engines' output pumps, all together, to copy their last lines.
OUTPUT_JOIN_TIMEOUT = 1.0
# The wrapper's status when it gives up on a crashing proxy: the platform restarts the dyno.
GAVE_UP_STATUS = 1
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Phase(Enum):
    BOOTING = "booting"  # replayer and app started; waiting for the app to accept
    SERVING = "serving"  # proxy on $PORT; all three supervised
    APP_ONLY = "app-only"  # the app took $PORT itself: it serves alone, mirroring is off
    STOPPING = "stopping"  # the one graceful shutdown
    DONE = "done"


@dataclass(frozen=True)
class SupervisorPlan:
    app: ChildSpec
    replayer: ChildSpec
    proxy: ChildSpec
    public_port: int
    shutdown_timeout: float
    replayer_policy: RestartPolicy
    proxy_policy: RestartPolicy
    # What to log instead of the replayer's full argv (options may hold secrets).
    replayer_summary: str = ""


def _format_seconds(value: float) -> str:
    return f"{value:.3g}s" if value < 10 else f"{value:.0f}s"


class Supervisor:
    """Runs the app, the replayer and the proxy until the app exits or a signal arrives."""

    def __init__(self, plan: SupervisorPlan, log: EventLog) -> None:
        self.plan = plan
        self.log = log
        self.clock = time.monotonic
        self.app = Child(plan.app)
        self.replayer = Child(plan.replayer)
        self.proxy = Child(plan.proxy)
        self.phase = Phase.BOOTING
        self._trackers = {
            "replayer": RestartTracker(plan.replayer_policy),
            "proxy": RestartTracker(plan.proxy_policy),
        }
        self._by_pid: dict[int, Child] = {}
        self._signals: list[int] = []
        self._boot_started = 0.0
        self._next_boot_notice = 0.0
        self._deadline = 0.0
        self._kill_deadline: float | None = None
        self._leftover_groups: dict[int, str] = {}
        self._exit_override: int | None = None
        self._signalled = False
        self._signal_grace_until = 0.0

    # ------------------------------------------------------------------ logging
    def _event(self, **fields: LogValue) -> None:
        self.log.event(**fields)

    def _enter(self, phase: Phase, **fields: LogValue) -> None:
        """The one place the wrapper's phase changes, logged with why."""
        self.phase = phase
        self._event(at="phase", phase=phase.value, **fields)

    # ------------------------------------------------------------------ signals
    def _record_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Handlers only record; the loop acts (and the wakeup fd has already woken it).
        self._signals.append(signum)

    def _install_signals(self) -> tuple[socket.socket, socket.socket, dict[int, object]]:
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        previous: dict[int, object] = {}
        for sig in SHUTDOWN_SIGNALS:
            current = signal.getsignal(sig)
            if sig == signal.SIGHUP and current == signal.SIG_IGN:
                continue  # started under nohup: keep ignoring hangups, as the app alone would
            previous[sig] = signal.signal(sig, self._record_signal)
        # SIGCHLD needs a Python-level handler for the wakeup fd to see it.
        previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        return reader, writer, previous

    @staticmethod
    def _restore_signals(previous: dict[int, object]) -> None:
        signal.set_wakeup_fd(-1)
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ main loop
    def run(self) -> int:
        reader, writer, previous = self._install_signals()
        try:
            now = self.clock()
            self._boot_started = now
            self._next_boot_notice = now + BOOT_NOTICE_INTERVAL
            self._start(self.replayer)
            if self._start(self.app):
                self._enter(Phase.BOOTING, waiting_for=f"{LOOPBACK}:{self.plan.app.port}")
            while True:
                # Signals first: an engine that exits because the platform signalled every
                # process is part of the shutdown, not a crash to restart.
                self._handle_signals()
                self._reap()
                self._step()
                if self.phase is Phase.DONE:
                    return self._exit_status()
                self._wait(reader, self._timeout())
        except BaseException:
            # A bug of ours must not leave the app and the engines running unsupervised.
            for child in (self.proxy, self.app, self.replayer):
                if child.alive:
                    child.signal_group(signal.SIGKILL)
            raise
        finally:
            self._restore_signals(previous)
            reader.close()
            writer.close()
            deadline = self.clock() + OUTPUT_JOIN_TIMEOUT
            for child in (self.proxy, self.replayer):
                child.join_output(max(0.0, deadline - self.clock()))

    def _wait(self, reader: socket.socket, timeout: float) -> None:
        with contextlib.suppress(InterruptedError):
            select.select([reader], [], [], max(0.0, timeout))
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while reader.recv(512):
                pass

    def _timeout(self) -> float:
        now = self.clock()
        if self.phase is Phase.STOPPING:
            deadline = self._kill_deadline if self._kill_deadline is not None else self._deadline
            return min(STOP_POLL_INTERVAL, deadline - now)
        if self.phase is Phase.BOOTING or self._engines_not_listening():
            return APP_PROBE_INTERVAL
        restarts = [
            c.restart_at - now for c in (self.replayer, self.proxy) if c.state is ChildState.BACKOFF
        ]
        return min([IDLE_INTERVAL, *restarts])

    # ------------------------------------------------------------------ children
    def _start(self, child: Child) -> bool:
        """Start a child and log it; a failed exec is handled like an immediate exit."""
        now = self.clock()
        try:
            pid = child.start(now)
        except OSError as exc:
            self._event(
                at="error", process=child.name, problem="cannot start",
                command=child.spec.argv[0], reason=exc.strerror or str(exc),
            )  # fmt: skip
            # The shell's codes: 127 not found, 126 found but not runnable.
            status = 127 if isinstance(exc, FileNotFoundError) else 126
            child.status = status
            if child is self.app:
                child.change(ChildState.EXITED)
                self._begin_shutdown(reason="app-not-started")
            else:
                child.started_at = now
                self._crashed(child, status, now)
            return False
        self._by_pid[pid] = child
        fields: dict[str, LogValue] = {
            "at": "start",
            "process": child.name,
            "pid": pid,
            "port": child.spec.port,
        }
        if child is self.replayer and self.plan.replayer_summary:
            fields["command"] = self.plan.replayer_summary
        else:
            fields["command"] = shlex.join(child.spec.argv)
        if child.starts > 1:
            fields["restart"] = child.starts - 1
        self._event(**fields)
        return True

    def _reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self._by_pid.pop(pid, None)
            if child is not None:
                self._on_exit(child, wait_status)
            # Otherwise an orphan re-parented to us (we are PID 1): reaping it is all it needs.

    def _on_exit(self, child: Child, wait_status: int) -> None:
        now = self.clock()
        status = exit_status(wait_status)
        child.reaped(status)
        if child.pid is not None and group_exists(child.pid):
            # The leader is gone but its group lives on (workers, a shell's children):
            # nothing supervises them now, so ask them to stop and watch them.
            self._leftover_groups[child.pid] = child.name
            signal_group(child.pid, signal.SIGTERM)
        fields: dict[str, LogValue] = {
            "at": "exit",
            "process": child.name,
            "pid": child.pid,
            "status": status,
        }
        if os.WIFSIGNALED(wait_status):
            fields["signal"] = signal_name(status)
        fields["uptime"] = _format_seconds(now - child.started_at)
        if child.state is ChildState.STOPPING or self.phase is Phase.STOPPING:
            child.change(ChildState.EXITED)
            self._event(**fields)
        elif child is self.app:
            child.change(ChildState.EXITED)
            self._event(**fields)
            self._begin_shutdown(reason="app-exited")
        else:
            self._crashed(child, status, now, fields)

    def _crashed(
        self, child: Child, status: int, now: float, fields: dict[str, LogValue] | None = None
    ) -> None:
        """An engine exited on its own: restart it after its backoff, or give up."""
        fields = (
            fields
            if fields is not None
            else {"at": "exit", "process": child.name, "status": status}
        )
        decision = self._trackers[child.name].record_crash(child.started_at, now)
        if decision.give_up:
            child.change(ChildState.FATAL)
            self._event(**fields, action="give-up")
            policy = self._trackers[child.name].policy
            self._event(
                at="error", process=child.name, problem="crashing",
                crashes=decision.crashes_in_window, window=_format_seconds(policy.crash_window),
                action="exit so the platform restarts the dyno",
            )  # fmt: skip
            self._exit_override = GAVE_UP_STATUS
            self._begin_shutdown(reason=f"{child.name}-crashing")
            return
        child.change(ChildState.BACKOFF)
        child.restart_at = now + decision.delay
        self._event(**fields, restart_in=_format_seconds(decision.delay))

    def _restart_due(self) -> None:
        now = self.clock()
        for child in (self.replayer, self.proxy):
            if child.state is ChildState.BACKOFF and child.restart_at <= now:
                self._start(child)

    # ------------------------------------------------------------------ phases
    def _step(self) -> None:
        if self.phase in (Phase.BOOTING, Phase.SERVING, Phase.APP_ONLY):
            self._watch_listeners()
        if self.phase is Phase.BOOTING:
            self._step_booting()
        if self.phase in (Phase.BOOTING, Phase.SERVING):
            self._restart_due()
        if self.phase is Phase.STOPPING:
            self._step_stopping()

    def _engines_not_listening(self) -> list[Child]:
        return [
            c
            for c in (self.replayer, self.proxy)
            if c.state is ChildState.RUNNING and not c.listened
        ]

    def _watch_listeners(self) -> None:
        """Note when each engine is first seen listening on its port (no connection made)."""
        for child in self._engines_not_listening():
            if has_listener(child.spec.port):
                child.listened = True
                self._event(at="ready", process=child.name, port=child.spec.port)

    def _step_booting(self) -> None:
        now = self.clock()
        plan = self.plan
        if accepts(plan.app.port):
            # Only where the bind probe sees this listener can a closed port later mean
            # "stopping" (it cannot on systems where SO_REUSEADDR lets 127.0.0.1 share a port
            # with a wildcard listener); elsewhere the app is simply always signalled.
            self.app.listened = has_listener(plan.app.port)
            self._event(
                at="ready", process="app", port=plan.app.port,
                after=_format_seconds(now - self._boot_started),
            )  # fmt: skip
            # $PORT is bound only now, so the platform's boot check still means "the app serves".
            if self.proxy.state is ChildState.STOPPED:
                self._start(self.proxy)
            if self.phase is Phase.BOOTING:
                self._enter(Phase.SERVING)
            return
        if accepts(plan.public_port):
            # Nothing of ours listens on $PORT yet, so this is the app, on the wrong port.
            self._event(
                at="error", process="app", problem="app-ignored-port", port=plan.public_port,
                expected=plan.app.port,
                fix=f"start the app on $PORT (the wrapper sets PORT={plan.app.port}) "
                f"or write the port in its command as {plan.public_port}",
                action="serving without mirroring",
            )  # fmt: skip
            self._enter(Phase.APP_ONLY, reason="app-ignored-port")
            self._stop(self.replayer)
            return
        if now >= self._next_boot_notice:
            self._next_boot_notice = now + BOOT_NOTICE_INTERVAL
            self._event(
                at="waiting", process="app", port=plan.app.port,
                waited=_format_seconds(now - self._boot_started),
            )  # fmt: skip

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            name = signal.Signals(signum).name
            if self.phase in (Phase.STOPPING, Phase.DONE):
                self._event(at="signal", signal=name, action="already stopping")
                continue
            self._event(at="signal", signal=name)
            self._begin_shutdown(reason=name, signalled=True)

    def _begin_shutdown(self, reason: str, signalled: bool = False) -> None:
        if self.phase in (Phase.STOPPING, Phase.DONE):
            return
        now = self.clock()
        self._deadline = now + self.plan.shutdown_timeout
        if signalled:
            self._signalled = True
            self._signal_grace_until = now + SIGNAL_GRACE
        for child in (self.replayer, self.proxy):
            if child.state is ChildState.BACKOFF:
                child.change(ChildState.STOPPED)
        self._enter(
            Phase.STOPPING, reason=reason, timeout=_format_seconds(self.plan.shutdown_timeout)
        )

    def _stop_unless_stopping(self, child: Child, now: float) -> None:
        """SIGTERM a child, unless it shows it got the platform's SIGTERM already."""
        if self._signalled and child.listened:
            if not has_listener(child.spec.port):
                # It was seen listening and has closed its port since: the platform signalled
                # it too and it is draining on its own; a second SIGTERM would cut that short.
                child.change(ChildState.STOPPING)
                self._event(
                    at="stop",
                    process=child.name,
                    pid=child.pid,
                    signal="none",
                    reason="already-stopping",
                )
                return
            if now < self._signal_grace_until:
                return  # give it a moment to show it was signalled too
        self._stop(child)

    def _stop(self, child: Child) -> None:
        """Ask a child to stop gracefully: one SIGTERM to its group, never repeated."""
        if child.state is ChildState.BACKOFF:
            child.change(ChildState.STOPPED)
        if child.state is not ChildState.RUNNING:
            return
        child.change(ChildState.STOPPING)
        child.signal_group(signal.SIGTERM)
        self._event(at="stop", process=child.name, pid=child.pid, signal="SIGTERM")

    def _step_stopping(self) -> None:
        now = self.clock()
        if self._kill_deadline is None and now >= self._deadline:
            self._kill_everything()
        if self._kill_deadline is not None:
            if not self._anything_left() or now >= self._kill_deadline:
                self._finish()
            return
        # The proxy drains first (the app must still be up to answer), then the app stops,
        # then the replayer flushes what the proxy sent it.
        for child in (self.proxy, self.app, self.replayer):
            if child.state is ChildState.RUNNING:
                self._stop_unless_stopping(child, now)
                return
            if child.state is ChildState.STOPPING:
                return
        self._forget_empty_groups()
        if not self._leftover_groups:
            self._finish()

    def _forget_empty_groups(self) -> None:
        for pgid in [p for p in self._leftover_groups if not group_exists(p)]:
            del self._leftover_groups[pgid]

    def _anything_left(self) -> bool:
        self._forget_empty_groups()
        return bool(self._leftover_groups) or any(
            c.alive for c in (self.proxy, self.app, self.replayer)
        )

    def _kill_everything(self) -> None:
        """The deadline passed: SIGKILL every group still there, ours or left over."""
        self._kill_deadline = self.clock() + KILL_GRACE
        for child in (self.proxy, self.app, self.replayer):
            if child.alive and child.signal_group(signal.SIGKILL):
                self._event(
                    at="kill",
                    process=child.name,
                    pid=child.pid,
                    signal="SIGKILL",
                    after=_format_seconds(self.plan.shutdown_timeout),
                )
        self._forget_empty_groups()
        for pgid, name in self._leftover_groups.items():
            if signal_group(pgid, signal.SIGKILL):
                self._event(at="kill", process=name, pgid=pgid, signal="SIGKILL", leftover=True)

    def _finish(self) -> None:
        self._reap()
        left = [c.name for c in (self.proxy, self.app, self.replayer) if c.alive]
        if left:
            self._event(at="error", problem="not reaped after SIGKILL", processes=",".join(left))
        self._enter(Phase.DONE, status=self._exit_status())

    def _exit_status(self) -> int:
        if self._exit_override is not None:
            return self._exit_override
        if self.app.status is not None:
            return self.app.status
        return GAVE_UP_STATUS  # the app could not even be reaped: report a failure
