"""A fake process table and clock for driving the supervisor as a transcript.

Events in are what the world does (a child exits, a port opens or closes, a signal
arrives, time passes); actions out are what the supervisor asked of the host (start,
SIGTERM, SIGKILL) and the lines it logged, in one list, in the order they happened.
Nothing runs: a signalled child exits only when the test says so.
"""

from __future__ import annotations

import io
import signal
from dataclasses import dataclass, field

from traffic_duplicator.logs import EventLog
from traffic_duplicator.wrapper.process import ChildSpec
from traffic_duplicator.wrapper.restarts import proxy_policy, replayer_policy
from traffic_duplicator.wrapper.supervisor import Supervisor, SupervisorPlan

PUBLIC_PORT = 5000
APP_PORT = 5001
REPLAYER_PORT = 5002
TIMEOUT = 10.0  # stages end by 7 s (proxy), 8.5 s (app), 9 s (replayer); SIGKILL at 10 s


class _Lines(io.StringIO):
    """A text stream that appends each written line to the transcript."""

    def __init__(self, transcript: list[str]) -> None:
        super().__init__()
        self._transcript = transcript

    def write(self, text: str) -> int:
        self._transcript.extend(text.splitlines())
        return len(text)


@dataclass
class FakeHost:
    transcript: list[str] = field(default_factory=list)
    clock: float = 0.0
    ports: dict[str, int] = field(default_factory=dict)
    listening: set[int] = field(default_factory=set)  # has_listener
    accepting: set[int] = field(default_factory=set)  # accepts
    groups: set[int] = field(default_factory=set)  # process groups with a live member
    exited: list[tuple[int, int]] = field(default_factory=list)  # waiting to be reaped
    pids: dict[str, int] = field(default_factory=dict)  # the last pid of each name
    names: dict[int, str] = field(default_factory=dict)
    cannot_start: dict[str, OSError] = field(default_factory=dict)
    _next_pid: int = 100

    # ------------------------------------------------------------------ the Host protocol
    def now(self) -> float:
        return self.clock

    def spawn(self, spec: ChildSpec) -> int:
        if spec.name in self.cannot_start:
            raise self.cannot_start[spec.name]
        pid = self._next_pid
        self._next_pid += 1
        self.pids[spec.name] = pid
        self.names[pid] = spec.name
        self.ports[spec.name] = spec.port
        self.groups.add(pid)
        self.transcript.append(f"-> start {spec.name}")
        return pid

    def reap(self) -> list[tuple[int, int]]:
        reaped, self.exited = self.exited, []
        return reaped

    def signal_group(self, pgid: int, sig: int) -> bool:
        name = self.names.get(pgid, str(pgid))
        self.transcript.append(f"-> {signal.Signals(sig).name} {name}")
        return pgid in self.groups

    def group_exists(self, pgid: int) -> bool:
        return pgid in self.groups

    def accepts(self, port: int) -> bool:
        return port in self.accepting

    def has_listener(self, port: int) -> bool:
        return port in self.listening

    # ------------------------------------------------------------------ events in
    def advance(self, seconds: float) -> None:
        self.clock += seconds

    def listen(self, name: str) -> None:
        port = self.ports[name]
        self.listening.add(port)
        self.accepting.add(port)

    def close(self, name: str) -> None:
        port = self.ports[name]
        self.listening.discard(port)
        self.accepting.discard(port)

    def exit(
        self, name: str, status: int = 0, *, killed_by: int | None = None, leave_group: bool = False
    ) -> None:
        """The last `name` exits with `status` (or killed by a signal); its port closes."""
        pid = self.pids[name]
        self.close(name)
        if not leave_group:
            self.groups.discard(pid)
        self.exited.append((pid, killed_by if killed_by is not None else status << 8))

    def group_gone(self, name: str) -> None:
        self.groups.discard(self.pids[name])


def plan(timeout: float = TIMEOUT) -> SupervisorPlan:
    def spec(name: str, port: int) -> ChildSpec:
        return ChildSpec(name, (name,), {}, port, prefix_output=name != "app")

    return SupervisorPlan(
        app=spec("app", APP_PORT),
        replayer=spec("replayer", REPLAYER_PORT),
        proxy=spec("proxy", PUBLIC_PORT),
        public_port=PUBLIC_PORT,
        shutdown_timeout=timeout,
        replayer_policy=replayer_policy(1.0),
        proxy_policy=proxy_policy(),
    )


class Transcript:
    """A supervisor on a fake host; each call returns what happened since the last one."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.host = FakeHost()
        log = EventLog(None, _Lines(self.host.transcript))
        self.supervisor = Supervisor(plan(timeout), log, self.host)
        self._seen = 0

    def _new(self) -> list[str]:
        lines = self.host.transcript[self._seen :]
        self._seen = len(self.host.transcript)
        return lines

    def begin(self) -> list[str]:
        self.supervisor.begin()
        return self._new()

    def tick(self, after: float = 0.0) -> list[str]:
        """Let `after` seconds pass, then one turn of the loop."""
        self.host.advance(after)
        self.supervisor.tick()
        return self._new()

    def signal(self, signum: int = signal.SIGTERM) -> list[str]:
        self.supervisor.on_signal(signum)
        return self.tick()

    def serving(self) -> Transcript:
        """Boot to SERVING with all three listening, and forget the boot's lines."""
        self.begin()
        self.host.listen("app")
        self.host.listen("replayer")
        self.tick()
        self.host.listen("proxy")
        self.tick()
        self._new()
        return self

    @property
    def phase(self) -> str:
        return self.supervisor.phase.value
