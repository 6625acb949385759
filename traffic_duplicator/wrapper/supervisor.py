"""The supervision state machine: start order, restarts, and one graceful shutdown.

The wrapper moves through explicit phases (`Phase`); each child has its own state
(`process.ChildState`). The machine takes events and acts through a `host.Host`:

- in: `begin()`, `on_signal(signum)` (a handler only records it), and `tick()`, which
  handles the recorded signals, reaps every exited process (orphans too: we may be PID 1),
  then does what the phase and the host's clock call for;
- out, through the host: start, SIGTERM, SIGKILL; and `done` with `exit_status()`.

`runner.run` drives it with the real system; the tests drive it with a fake process
table and a clock they advance by hand. Shutdown is `stopping.Shutdown`.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from enum import Enum

from traffic_duplicator.logs import EventLog, LogValue
from traffic_duplicator.redact import mask_argv
from traffic_duplicator.wrapper.host import Host
from traffic_duplicator.wrapper.ports import LOOPBACK
from traffic_duplicator.wrapper.process import (
    Child,
    ChildSpec,
    ChildState,
    exit_status,
    signal_name,
)
from traffic_duplicator.wrapper.restarts import RestartPolicy, RestartTracker
from traffic_duplicator.wrapper.stopping import (
    Crew,
    LeftoverGroups,
    Shutdown,
    format_seconds,
    stop_child,
)

# How often to look for the app's port while it boots; a refused loopback connect is cheap.
APP_PROBE_INTERVAL = 0.05
# How often to say we are still waiting for the app (Heroku gives a web dyno 60 s to bind).
BOOT_NOTICE_INTERVAL = 10.0
# The loop wakes at least this often even with nothing scheduled.
IDLE_INTERVAL = 5.0
# The wrapper's status when it gives up on a crashing proxy: the platform restarts the dyno.
GAVE_UP_STATUS = 1
# The shell's statuses for a program that cannot be run: not found, found but not runnable.
NOT_FOUND_STATUS = 127
NOT_RUNNABLE_STATUS = 126


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


class Supervisor:
    """Runs the app, the replayer and the proxy until the app exits or a signal arrives."""

    def __init__(self, plan: SupervisorPlan, log: EventLog, host: Host) -> None:
        self.plan = plan
        self.log = log
        self.host = host
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
        self._crew = Crew(self.children, LeftoverGroups(host, log), host, log)
        self._shutdown: Shutdown | None = None
        self._exit_override: int | None = None

    @property
    def children(self) -> tuple[Child, Child, Child]:
        """In the order they stop."""
        return (self.proxy, self.app, self.replayer)

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    # ------------------------------------------------------------------ events in
    def begin(self) -> None:
        """Start the replayer, then the app; the proxy follows once the app serves."""
        now = self.host.now()
        self._boot_started = now
        self._next_boot_notice = now + BOOT_NOTICE_INTERVAL
        self._start(self.replayer)
        if self._start(self.app):
            self._enter(Phase.BOOTING, waiting_for=f"{LOOPBACK}:{self.plan.app.port}")

    def on_signal(self, signum: int) -> None:
        """What a signal handler calls: record only; `tick` acts."""
        self._signals.append(signum)

    def tick(self) -> None:
        """Act on what happened since the last tick, then on the time."""
        # Signals first: an engine that exits because the platform signalled every process
        # is part of the shutdown, not a crash to restart.
        self._handle_signals()
        self._reap()
        self._step()

    def timeout(self) -> float:
        """How long the loop may wait for a signal or an exit before the next tick."""
        if self._shutdown is not None:
            return self._shutdown.timeout()
        if self.phase is Phase.BOOTING or self._engines_not_listening():
            return APP_PROBE_INTERVAL
        now = self.host.now()
        restarts = [
            c.restart_at - now for c in (self.replayer, self.proxy) if c.state is ChildState.BACKOFF
        ]
        return min([IDLE_INTERVAL, *restarts])

    def kill_all(self) -> None:
        """A bug of ours must not leave the app and the engines running unsupervised."""
        for child in self.children:
            if child.alive and child.pid is not None:
                self.host.signal_group(child.pid, signal.SIGKILL)

    def exit_status(self) -> int:
        if self._exit_override is not None:
            return self._exit_override
        if self.app.status is not None:
            return self.app.status
        return GAVE_UP_STATUS  # the app could not even be reaped: report a failure

    # ------------------------------------------------------------------ logging
    def _enter(self, phase: Phase, **fields: LogValue) -> None:
        """The one place the wrapper's phase changes, logged with why."""
        self.phase = phase
        self.log.event(at="phase", phase=phase.value, **fields)

    # ------------------------------------------------------------------ children
    def _start(self, child: Child) -> bool:
        """Start a child and log it; a failed exec is handled like an immediate exit."""
        now = self.host.now()
        try:
            pid = self.host.spawn(child.spec)
        except OSError as exc:
            self._not_started(child, exc, now)
            return False
        child.started(pid, now)
        self._by_pid[pid] = child
        if child is self.replayer and self.plan.replayer_summary:
            command = self.plan.replayer_summary
        else:
            command = mask_argv(child.spec.argv)  # `--password X` as well as `--password=X`
        restart = {"restart": child.starts - 1} if child.starts > 1 else {}
        self.log.event(
            at="start", process=child.name, pid=pid, port=child.spec.port, command=command,
            **restart,
        )  # fmt: skip
        return True

    def _not_started(self, child: Child, exc: OSError, now: float) -> None:
        self.log.event(
            at="error", process=child.name, problem="cannot start",
            command=child.spec.argv[0], reason=exc.strerror or str(exc),
        )  # fmt: skip
        status = NOT_FOUND_STATUS if isinstance(exc, FileNotFoundError) else NOT_RUNNABLE_STATUS
        child.status = status
        if child is self.app:
            child.change(ChildState.EXITED)
            self._begin_shutdown(reason="app-not-started")
        else:
            child.started_at = now
            self._crashed(child, {"at": "exit", "process": child.name, "status": status}, now)

    def _reap(self) -> None:
        for pid, wait_status in self.host.reap():
            child = self._by_pid.pop(pid, None)
            if child is not None:
                self._on_exit(child, wait_status)
            # Otherwise an orphan re-parented to us (we are PID 1): reaping it is all it needs.

    def _on_exit(self, child: Child, wait_status: int) -> None:
        now = self.host.now()
        status = exit_status(wait_status)
        child.reaped(status)
        if child.pid is not None and self.host.group_exists(child.pid):
            # The leader is gone but its group lives on: ask them to stop, and watch them.
            self._crew.leftovers.adopt(child.pid, child.name)
        fields: dict[str, LogValue] = {
            "at": "exit",
            "process": child.name,
            "pid": child.pid,
            "status": status,
        }
        if os.WIFSIGNALED(wait_status):
            fields["signal"] = signal_name(status)
        fields["uptime"] = format_seconds(now - child.started_at)
        if child.state is ChildState.STOPPING or self.phase is Phase.STOPPING:
            child.change(ChildState.EXITED)
            self.log.event(**fields)
        elif child is self.app:
            child.change(ChildState.EXITED)
            self.log.event(**fields)
            self._begin_shutdown(reason="app-exited")
        else:
            self._crashed(child, fields, now)

    def _crashed(self, child: Child, fields: dict[str, LogValue], now: float) -> None:
        """An engine exited on its own: restart it after its backoff, or give up."""
        tracker = self._trackers[child.name]
        decision = tracker.record_crash(child.started_at, now)
        if decision.give_up:
            child.change(ChildState.FATAL)
            self.log.event(**fields, action="give-up")
            self.log.event(
                at="error", process=child.name, problem="crashing",
                crashes=decision.crashes_in_window,
                window=format_seconds(tracker.policy.crash_window),
                action="exit so the platform restarts the dyno",
            )  # fmt: skip
            self._exit_override = GAVE_UP_STATUS
            self._begin_shutdown(reason=f"{child.name}-crashing")
            return
        child.change(ChildState.BACKOFF)
        child.restart_at = now + decision.delay
        self.log.event(**fields, restart_in=format_seconds(decision.delay))

    def _restart_due(self) -> None:
        now = self.host.now()
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
        if self._shutdown is not None and self.phase is Phase.STOPPING and self._shutdown.step():
            self._finish()

    def _engines_not_listening(self) -> list[Child]:
        return [
            c
            for c in (self.replayer, self.proxy)
            if c.state is ChildState.RUNNING and not c.listened
        ]

    def _watch_listeners(self) -> None:
        """Note when each engine is first seen listening on its port (no connection made)."""
        for child in self._engines_not_listening():
            if self.host.has_listener(child.spec.port):
                child.listened = True
                self.log.event(at="ready", process=child.name, port=child.spec.port)

    def _step_booting(self) -> None:
        now = self.host.now()
        plan = self.plan
        if self.host.accepts(plan.app.port):
            # Only where the bind probe sees this listener can a closed port later mean
            # "stopping" (it cannot on systems where SO_REUSEADDR lets 127.0.0.1 share a port
            # with a wildcard listener); elsewhere the app is simply always signalled.
            self.app.listened = self.host.has_listener(plan.app.port)
            self.log.event(
                at="ready", process="app", port=plan.app.port,
                after=format_seconds(now - self._boot_started),
            )  # fmt: skip
            # $PORT is bound only now, so the platform's boot check still means "the app serves".
            if self.proxy.state is ChildState.STOPPED:
                self._start(self.proxy)
            if self.phase is Phase.BOOTING:
                self._enter(Phase.SERVING)
            return
        if self.host.accepts(plan.public_port):
            # Nothing of ours listens on $PORT yet, so this is the app, on the wrong port.
            self.log.event(
                at="error", process="app", problem="app-ignored-port", port=plan.public_port,
                expected=plan.app.port,
                fix=f"start the app on $PORT (the wrapper sets PORT={plan.app.port}) "
                f"or write the port in its command as {plan.public_port}",
                action="serving without mirroring",
            )  # fmt: skip
            self._enter(Phase.APP_ONLY, reason="app-ignored-port")
            stop_child(self.replayer, self.host, self.log)
            return
        if now >= self._next_boot_notice:
            self._next_boot_notice = now + BOOT_NOTICE_INTERVAL
            self.log.event(
                at="waiting", process="app", port=plan.app.port,
                waited=format_seconds(now - self._boot_started),
            )  # fmt: skip

    def _handle_signals(self) -> None:
        while self._signals:
            name = signal.Signals(self._signals.pop(0)).name
            if self.phase in (Phase.STOPPING, Phase.DONE):
                self.log.event(at="signal", signal=name, action="already stopping")
                continue
            self.log.event(at="signal", signal=name)
            self._begin_shutdown(reason=name, signalled=True)

    def _begin_shutdown(self, reason: str, signalled: bool = False) -> None:
        if self.phase in (Phase.STOPPING, Phase.DONE):
            return
        for child in (self.replayer, self.proxy):
            if child.state is ChildState.BACKOFF:
                child.change(ChildState.STOPPED)
        timeout = self.plan.shutdown_timeout
        self._shutdown = Shutdown(self._crew, timeout=timeout, signalled=signalled)
        self._enter(Phase.STOPPING, reason=reason, timeout=format_seconds(timeout))

    def _finish(self) -> None:
        self._reap()
        left = [c.name for c in self.children if c.alive]
        if left:
            self.log.event(at="error", problem="not reaped after SIGKILL", processes=",".join(left))
        self._enter(Phase.DONE, status=self.exit_status())
