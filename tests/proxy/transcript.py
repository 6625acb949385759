"""A mirror target with no sockets and no real time: the test plays the loop and the network.

`Transcript` drives a real `MirrorTarget` through its two seams (`loop=`, `dial=`): a fake
clock whose time moves only when the test says so, and fake connections. The test feeds
events in (requests, an iteration's end, connect ok or failed, bytes answered, a backlog,
connection lost, time advanced) and reads actions out: one short line per thing the
target did to the network or its log, in order.

    t = Transcript()
    t.send("/a")                 # -> ["dial 1"]
    t.connect(1)                 # -> ["write 1 /a"]
"""

from __future__ import annotations

import io
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from traffic_duplicator.addr import Address
from traffic_duplicator.logs import EventLog, RateLimitedLog
from traffic_duplicator.proxy.config import MirrorConfig, TargetKind, TargetSpec
from traffic_duplicator.proxy.connection import MirrorConnection
from traffic_duplicator.proxy.health import TargetState
from traffic_duplicator.proxy.mirror import GOR_LINGER, MirrorTarget

_REQUEST_LINE = re.compile(rb"(?:GET|POST|PUT) (\S+) HTTP/1\.1\r\n")
# Log fields worth a transcript line: the rest (counters, byte counts) are read directly.
_LOGGED = ("reason", "error", "attempts", "requests_per_connection")


def request(path: str, size: int = 0, close: bool = False) -> bytes:
    """A GET (or a POST with a `size`-byte body) for `path`."""
    extra = b"Connection: close\r\n" if close else b""
    if not size:
        return b"GET %s HTTP/1.1\r\nHost: m\r\n%s\r\n" % (path.encode(), extra)
    head = b"POST %s HTTP/1.1\r\nHost: m\r\nContent-Length: %d\r\n%s\r\n"
    return head % (path.encode(), size, extra) + b"x" * size


@dataclass
class _Timer:
    when: float
    callback: Callable[[], object]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """Loop time and callbacks: `call_soon` runs at the iteration's end, timers on `advance`."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._soon: list[Callable[[], object]] = []
        self._timers: list[_Timer] = []

    def time(self) -> float:
        return self.now

    def call_soon(self, callback: Callable[[], object]) -> None:
        self._soon.append(callback)

    def call_later(self, delay: float, callback: Callable[[], object]) -> _Timer:
        timer = _Timer(self.now + delay, callback)
        self._timers.append(timer)
        return timer

    def run_soon(self) -> None:
        while self._soon:
            callbacks, self._soon = self._soon, []
            for callback in callbacks:
                callback()

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass, running each timer at its own time."""
        end = self.now + seconds
        while True:
            due = [t for t in self._timers if not t.cancelled and t.when <= end]
            if not due:
                break
            timer = min(due, key=lambda t: t.when)
            self._timers.remove(timer)
            self.now = max(self.now, timer.when)
            timer.callback()
            self.run_soon()
        self.now = end


class _Actions(io.StringIO):
    """The target's log stream: each line becomes a `log ...` action."""

    def __init__(self, actions: list[str]) -> None:
        super().__init__()
        self._actions = actions

    def write(self, text: str) -> int:
        fields = dict(word.split("=", 1) for word in shlex.split(text))
        shown = [f"{key}={fields[key]}" for key in _LOGGED if key in fields]
        self._actions.append(" ".join(["log", fields["at"], *shown]))
        return len(text)


class FakeTransport:
    """What the target does to one connection, as actions; `buffered` is set by the test."""

    def __init__(self, number: int, actions: list[str]) -> None:
        self.number = number
        self.actions = actions
        self.buffered = 0
        self.sent = bytearray()  # every byte written, for tests that read the framing

    def _act(self, what: str) -> None:
        self.actions.append(f"{what} {self.number}")

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.sent += data
        paths = [m.decode() for m in _REQUEST_LINE.findall(data)]
        self._act("write")
        self.actions[-1] += " " + (" ".join(paths) if paths else f"{len(data)}B")

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self._act("eof")

    def close(self) -> None:
        self._act("close")

    def abort(self) -> None:
        self._act("abort")

    def get_write_buffer_size(self) -> int:
        return self.buffered


class _Attempt:
    def __init__(self, number: int, actions: list[str]) -> None:
        self.number = number
        self.actions = actions

    def cancel(self) -> None:
        self.actions.append(f"cancel {self.number}")


class Transcript:
    """One target (raw HTTP unless `gor`) with a fake loop; connections numbered from 1."""

    def __init__(
        self,
        gor: bool = False,
        buffer_bytes: int = 64 * 1024,
        connections: int = 2,
        target_class: type[MirrorTarget] = MirrorTarget,
    ):
        self.actions: list[str] = []
        self.gor = gor
        self.loop = FakeLoop()
        self.conns: list[MirrorConnection] = []  # in the order they were dialed
        self.dialed_at: list[float] = []
        log = EventLog(None, _Actions(self.actions))
        kind = TargetKind.GOR if gor else TargetKind.HTTP
        self.target = target_class(
            TargetSpec(Address("127.0.0.1", 9), kind),
            MirrorConfig(buffer_bytes=buffer_bytes, connections=connections),
            host="127.0.0.1",
            errors=RateLimitedLog(log, 5.0, clock=self.loop.time),
            log=log,
            loop=self.loop,
            dial=self._dial,
        )

    def _dial(self, conn: MirrorConnection) -> _Attempt:
        self.conns.append(conn)
        self.dialed_at.append(self.loop.now)
        self.actions.append(f"dial {len(self.conns)}")
        return _Attempt(len(self.conns), self.actions)

    def take(self) -> list[str]:
        """The actions since the last call."""
        taken = self.actions[:]
        self.actions.clear()
        return taken

    # ---- events in: the app's side ------------------------------------------------------

    def send(self, path: str, size: int = 0, close: bool = False) -> list[str]:
        """A whole request, then the iteration's end (the corked bytes are flushed)."""
        self.target.send(request(path, size, close), close)
        return self.iteration()

    def begin(self, path: str, length: int) -> MirrorConnection | None:
        head = b"PUT %s HTTP/1.1\r\nHost: m\r\nContent-Length: %d\r\n\r\n" % (path.encode(), length)
        return self.target.begin(head, close=False)

    def iteration(self) -> list[str]:
        """The iteration's end; for a gor:// target, its linger too (the copies go out)."""
        self.loop.run_soon()
        if self.gor:
            self.loop.advance(GOR_LINGER)
        return self.take()

    # ---- events in: the network's side ----------------------------------------------------

    def conn(self, number: int) -> MirrorConnection:
        return self.conns[number - 1]

    def connect(self, number: int) -> list[str]:
        self.conn(number).connection_made(FakeTransport(number, self.actions))  # type: ignore[arg-type]
        return self.iteration()

    def refuse(self, number: int, reason: str = "Connection refused") -> list[str]:
        conn = self.conn(number)
        conn.attempt = None  # as the dialer does: the attempt is over
        self.target.connect_failed(conn, reason)
        return self.iteration()

    def answer(self, number: int, responses: int = 1) -> list[str]:
        self.conn(number).data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * responses)
        return self.iteration()

    def backlog(self, number: int, size: int) -> None:
        """The kernel took all but `size` bytes of connection `number` (0: all of them)."""
        conn = self.conn(number)
        cast(FakeTransport, conn.transport).buffered = size
        if size:
            conn.pause_writing()
        else:
            conn.resume_writing()

    def lose(self, number: int, exc: Exception | None = None) -> list[str]:
        self.conn(number).connection_lost(exc)
        return self.iteration()

    def advance(self, seconds: float) -> list[str]:
        self.loop.advance(seconds)
        return self.take()

    # ---- state out ------------------------------------------------------------------------

    @property
    def state(self) -> TargetState:
        return self.target.state

    def counts(self) -> tuple[int, int, int]:
        """(mirrored, dropped, failed)."""
        counters = self.target.counters
        return counters.mirrored, counters.dropped, counters.failed
