"""Mirror targets: per-target pools of persistent connections, bounded buffers, drop policy.

Every client connection shares its target's few connections, so a load of short client
connections (`Connection: close`) does not turn into a connection per request here. A
request is written whole to one connection; a request that arrives in pieces (a stream)
owns its connection until its end, so two requests never interleave on one connection.

Writes are corked for one event-loop iteration: the requests of every client read in an
iteration go to the target in one send. On loopback a send costs far more than the
Python around it (it runs the receiver's TCP stack), so this is the mirror's main saving.

Bounded memory: the bytes a target is behind by are capped; corked bytes are not counted,
they are handed over within the iteration. Behind means not yet known to have arrived:
waiting for a connection to be established, in a transport's buffer, or, for a raw-HTTP
target, handed over but not answered yet. Every raw request gets a response, so the
copies a target that stops reading leaves in the kernel's socket buffers (about 1 MB per
connection, outside our RSS) count too, retired connections included; a gor:// target
never answers, so only our own buffers can be counted for it. At a request's start, a
target over its cap loses the whole request (`dropped`). Open connections, retired ones
included, are capped as well. A stream that pushes the target over the cap mid-request
has its connection reset and is counted `dropped`; the client's next request starts on
another connection. A target that refuses, times out or breaks is `failed`; new
connections to it wait for a capped backoff, and while it is down its requests fail at
once instead of waiting anywhere.
"""

from __future__ import annotations

import asyncio
import enum
import os
import time
from collections import deque
from typing import Any, cast

from traffic_duplicator.gorproto import REQUEST, SEPARATOR
from traffic_duplicator.logs import EventLog, RateLimitedLog
from traffic_duplicator.proxy.backoff import Backoff
from traffic_duplicator.proxy.config import MirrorConfig, TargetKind, TargetSpec
from traffic_duplicator.proxy.counters import TargetCounters

CONNECT_TIMEOUT = 3.0
# Many HTTP servers close a keep-alive connection after N requests (nginx: 1000 since
# 1.19.10, 100 before; Apache: 100), dropping copies pipelined behind the Nth. We retire
# a raw-HTTP connection first, cleanly, with a half-close after its last request. A
# target that closes sooner teaches us its limit (see MirrorTarget.lost).
MAX_REQUESTS_PER_CONNECTION = 1000
# A retired connection waits this long for the target to answer and close it.
RETIRE_LINGER = 30.0
WATCHDOG_INTERVAL = 0.5
# After a stream was reset for falling behind, no new connection is opened for this long:
# a target that stalls must not get a fresh connection for every large request.
REOPEN_AFTER_RESET = 0.25
# What a raw-HTTP request that arrived in pieces (a stream) weighs, at most, among the
# unanswered bytes once it is complete (see MirrorTarget.end).
STREAM_IN_FLIGHT = 64 * 1024
# Connections beyond the pool size, opened when every pooled one is owned by a stream
# (or, with `Connection: close` clients, one per request). Retired connections count:
# at this many open connections no new one is opened.
MAX_EXTRA_CONNECTIONS = 64
_SEPARATOR_TAIL = len(SEPARATOR) - 1


class Finish(enum.IntEnum):
    """What a retired connection does once its last bytes are handed to the transport."""

    NONE = 0
    HALF_CLOSE = 1  # raw HTTP: the target answers, sees our EOF and closes
    CLOSE = 2  # gor: there is nothing to answer


class MirrorConnection(asyncio.Protocol):
    """One connection to a target; it discards whatever the target answers."""

    __slots__ = (
        "answered",
        "chunks",
        "chunks_size",
        "close_after",
        "dead",
        "finish",
        "in_flight",
        "owned",
        "queued",
        "requests",
        "retired",
        "since",
        "streamed",
        "tail",
        "target",
        "task",
        "timed_out",
        "transport",
        "uncounted",
        "weights",
    )

    def __init__(self, target: MirrorTarget) -> None:
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.chunks: list[bytes] = []  # written, not yet handed to the transport
        self.chunks_size = 0
        self.queued = 0  # whole requests written before the connection was up
        self.requests = 0  # requests written to this connection
        self.owned = False  # a stream is writing a request to it
        self.close_after = False  # the owning stream's request ends the connection
        self.retired = False  # takes no new requests
        self.finish = Finish.NONE
        self.dead = False  # reset or broken: every further write is ignored
        self.tail = b""  # gor streams: the last bytes written, to spot a split separator
        self.task: asyncio.Task[Any] | None = None
        self.since = 0.0  # loop time it started connecting, or was retired
        self.timed_out = False
        self.answered = 0  # raw HTTP: responses seen (status lines counted, not parsed)
        # Raw HTTP: what each request not answered yet weighs in the target's
        # `unanswered` (see MirrorTarget.answered), oldest first.
        self.weights: deque[int] = deque()
        self.uncounted = 0  # weight of requests still corked: counted when handed over
        self.in_flight = 0  # this connection's share of the target's `unanswered`
        self.streamed = 0  # raw HTTP: bytes of the stream in progress

    def write(self, data: bytes) -> None:
        target = self.target
        if not self.chunks:
            target.dirty(self)
        self.chunks.append(data)
        self.chunks_size += len(data)
        target.unsent += len(data)
        if self.transport is None:
            target.waiting += len(data)

    def flush(self) -> None:
        """Hand the corked bytes to the transport (which must exist), then finish."""
        transport = self.transport
        assert transport is not None
        chunks = self.chunks
        if chunks:
            self.chunks = []
            self.target.unsent -= self.chunks_size
            self.chunks_size = 0
            transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            if self.uncounted:
                self.in_flight += self.uncounted
                self.target.unanswered += self.uncounted
                self.uncounted = 0
        if self.finish:
            if self.finish == Finish.CLOSE:
                transport.close()  # after the transport's buffer is sent
            elif transport.can_write_eof():
                transport.write_eof()
            self.finish = Finish.NONE

    def discard(self) -> None:
        """Forget unsent bytes (the connection is gone)."""
        if self.chunks:
            self.target.unsent -= self.chunks_size
            if self.transport is None:
                self.target.waiting -= self.chunks_size
            self.chunks = []
            self.chunks_size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport; both have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.target.connected(self)

    def data_received(self, data: bytes) -> None:
        # Responses are read only so that the target never blocks on them, and counted
        # roughly (a body could hold "HTTP/1."; it only makes the count generous).
        seen = data.count(b"HTTP/1.")
        if seen:
            self.answered += seen
            self.target.answered(self, seen)

    def eof_received(self) -> bool:
        return False  # the target closed: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.target.lost(self, exc)

    # With a write buffer limit of 0, "paused" means exactly "the transport holds bytes".
    def pause_writing(self) -> None:
        self.target.backlogged.add(self)

    def resume_writing(self) -> None:
        self.target.backlogged.discard(self)

    def connect_timed_out(self) -> None:
        self.timed_out = True
        if self.task is not None:
            self.task.cancel()

    def overdue(self, now: float) -> bool:
        """Connecting for too long, or retired and still not closed by the target."""
        limit = RETIRE_LINGER if self.retired else CONNECT_TIMEOUT
        return now - self.since > limit and (self.retired or self.transport is None)


class MirrorTarget:
    """One duplex target: its connections, its counters and its drop policy."""

    def __init__(
        self,
        spec: TargetSpec,
        config: MirrorConfig,
        *,
        host: str,
        errors: RateLimitedLog,
        log: EventLog,
        verbose: bool = False,
    ) -> None:
        self.name = str(spec)
        self.gor = spec.kind is TargetKind.GOR
        self.counters = TargetCounters()
        self.unsent = 0  # bytes in connections' chunks
        self.waiting = 0  # of those, bytes for connections still being established
        # Raw HTTP: bytes of whole requests handed to transports, not answered yet.
        self.unanswered = 0
        self.backlogged: set[MirrorConnection] = set()  # transports holding unsent bytes
        self._host = host
        self._port = spec.address.port
        self._cap = config.buffer_bytes
        self._size = config.connections
        self._conns: list[MirrorConnection] = []  # take requests: pooled, extra, connecting
        self._live: set[MirrorConnection] = set()  # every connection not yet lost
        self._next = 0  # round-robin position in _conns
        self._current: MirrorConnection | None = None  # whole requests' pick this iteration
        self._dirty: list[MirrorConnection] = []
        self._flush_scheduled = False
        self._backoff = Backoff()
        self._retry_at = 0.0  # non-zero while the target is down: no attempt before it
        self._probe: MirrorConnection | None = None  # the one attempt while it is down
        self._errors = errors
        self._log = log
        self._verbose = verbose
        self._id_prefix = os.urandom(8).hex().encode()
        self._id_counter = 0
        self._closing = False
        self._request_limit = MAX_REQUESTS_PER_CONNECTION
        self._watchdog: asyncio.TimerHandle | None = None
        self._reopen_at = 0.0  # non-zero after a reset: no new connection before it

    # ---- requests -------------------------------------------------------------------

    def send(self, data: bytes, close: bool) -> None:
        """Mirror one whole request (all its bytes are here)."""
        if self.waiting + self.unanswered >= self._cap or (
            self.backlogged and self.behind() >= self._cap
        ):
            self._drop("behind")
            return
        if self.gor:
            if SEPARATOR in data:
                self._drop("separator")
                return
            data = b"".join((self._gor_header(), data, SEPARATOR))
        conn = self._current  # this iteration's connection, the usual case
        if conn is None or conn.owned:
            conn = self._pick()
            if conn is None:
                return
        conn.write(data)
        conn.requests += 1
        if conn.transport is not None:
            self.counters.mirrored += 1
        else:
            conn.queued += 1
        if not self.gor:
            conn.weights.append(len(data))
            conn.uncounted += len(data)
        if not self.gor and (close or conn.requests >= self._request_limit):
            self._retire(conn, Finish.NONE if close else Finish.HALF_CLOSE)

    def begin(self, data: bytes, close: bool) -> MirrorConnection | None:
        """Start mirroring a request whose end has not arrived; None if it is not mirrored."""
        if self.behind() >= self._cap:
            self._drop("behind")
            return None
        if self.gor and SEPARATOR in data:
            self._drop("separator")
            return None
        conn = self._pick()
        if conn is None:
            return None
        conn.owned = True
        conn.close_after = close
        conn.streamed = len(data)
        if self.gor:
            conn.tail = data[-_SEPARATOR_TAIL:]
            data = self._gor_header() + data
        conn.write(data)
        self._check_stream(conn)
        return conn

    def stream(self, conn: MirrorConnection, data: bytes) -> None:
        """More bytes of the request `conn` carries."""
        if conn.dead:
            return
        if self.gor:
            if SEPARATOR in data or SEPARATOR in conn.tail + data[:_SEPARATOR_TAIL]:
                self._reset(conn, "separator")
                return
            if len(data) >= _SEPARATOR_TAIL:
                conn.tail = data[-_SEPARATOR_TAIL:]
            else:
                conn.tail = (conn.tail + data)[-_SEPARATOR_TAIL:]
        conn.streamed += len(data)
        conn.write(data)
        self._check_stream(conn)

    def end(self, conn: MirrorConnection) -> None:
        """The request `conn` carries is complete."""
        if conn.dead:
            return
        if self.gor:
            conn.write(SEPARATOR)
        else:
            # While it streamed, a stalled target would have left it behind (and reset
            # it): at its end, at most its last part can still be unread.
            weight = min(conn.streamed, STREAM_IN_FLIGHT)
            conn.weights.append(weight)
            conn.in_flight += weight
            self.unanswered += weight
        conn.owned = False
        conn.requests += 1
        if conn.transport is not None:
            self.counters.mirrored += 1
        else:
            conn.queued += 1
        if not self.gor and (conn.close_after or conn.requests >= self._request_limit):
            self._retire(conn, Finish.NONE if conn.close_after else Finish.HALF_CLOSE)
        elif len(self._conns) > self._size:
            # Shrink back after a burst of streams.
            self._retire(conn, Finish.CLOSE if self.gor else Finish.HALF_CLOSE)

    def abandon(self, conn: MirrorConnection) -> None:
        """The client stopped mid-request: the partial copy must not reach the target."""
        if not conn.dead:
            self._kill(conn)

    def _check_stream(self, conn: MirrorConnection) -> None:
        if self.behind() > self._cap:
            self._reset(conn, "behind")

    def _backlog(self, uncounted: bool = False) -> int:
        """Bytes in transport buffers; `uncounted`: only those not in `unanswered`."""
        backlogged = self.backlogged
        if not backlogged:
            return 0
        every = self.gor or not uncounted
        return sum(
            conn.transport.get_write_buffer_size()
            for conn in backlogged
            if conn.transport is not None and (every or conn.owned)
        )

    def behind(self) -> int:
        """Bytes not yet known to have arrived (see the module's docstring)."""
        return self.waiting + self.unanswered + self._backlog(uncounted=True)

    def buffered(self) -> int:
        """Every byte the target holds unsent, corked ones included."""
        return self.unsent + self._backlog()

    def answered(self, conn: MirrorConnection, responses: int) -> None:
        """`responses` more came back on `conn`: their requests are no longer in flight."""
        weights = conn.weights
        released = 0
        for _ in range(min(responses, len(weights))):
            released += weights.popleft()
        # A generous count could reach requests still corked: never below zero.
        released = min(released, conn.in_flight)
        conn.in_flight -= released
        self.unanswered -= released

    def _gor_header(self) -> bytes:
        self._id_counter = (self._id_counter + 1) & 0xFFFFFFFF
        return b"%s %s%08x %d 0\n" % (REQUEST, self._id_prefix, self._id_counter, time.time_ns())

    # ---- corking --------------------------------------------------------------------

    def dirty(self, conn: MirrorConnection) -> None:
        """`conn` got its first unsent bytes this iteration: flush them at its end."""
        self._dirty.append(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._current = None  # the next iteration's requests go to the next connection
        dirty = self._dirty
        self._dirty = []
        for conn in dirty:
            # Connections still being established are flushed by connected().
            if conn.transport is not None and not conn.dead:
                conn.flush()

    # ---- the pool -------------------------------------------------------------------

    def _pick(self) -> MirrorConnection | None:
        """A connection free for a new request, or None (the request is counted lost)."""
        current = self._current
        if current is not None and not current.owned:
            return current
        conns = self._conns
        count = len(conns)
        backlogged = self.backlogged
        start = self._next
        for offset in range(count):
            index = (start + offset) % count
            conn = conns[index]
            if not conn.owned and conn.transport is not None and conn not in backlogged:
                self._next = index + 1
                self._current = conn
                return conn
        if self._retry_at:
            # Down: one attempt at a time, once the backoff has passed.
            probe = self._probe
            if probe is None and asyncio.get_running_loop().time() >= self._retry_at:
                probe = self._probe = self._open()
            if probe is None or probe.owned:
                self.counters.failed += 1
                return None
            self._current = probe
            return probe
        if self._reopen_at:
            if asyncio.get_running_loop().time() < self._reopen_at:
                free = self._any_free(start)
                if free is None:
                    self._drop("behind")
                return free
            self._reopen_at = 0.0
        if len(self._live) >= self._size + MAX_EXTRA_CONNECTIONS:
            # Retired connections still waiting for their answers hold the rest.
            free = self._any_free(start)
            if free is None:
                self._drop("connections")
            return free
        if count < self._size:
            opened = self._current = self._open()
            return opened
        free = self._any_free(start)
        if free is not None:
            return free
        return self._open()

    def _any_free(self, start: int) -> MirrorConnection | None:
        """The next connection not owned by a stream, even one that is behind."""
        conns = self._conns
        count = len(conns)
        for offset in range(count):
            index = (start + offset) % count
            conn = conns[index]
            if not conn.owned:
                self._next = index + 1
                self._current = conn
                return conn
        return None

    def _open(self) -> MirrorConnection:
        loop = asyncio.get_running_loop()
        conn = MirrorConnection(self)
        self._conns.append(conn)
        self._live.add(conn)
        conn.task = loop.create_task(self._connect(conn), name=f"mirror-connect {self.name}")
        conn.since = loop.time()
        self._watch(loop)
        return conn

    async def _connect(self, conn: MirrorConnection) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: conn, self._host, self._port)
        except asyncio.CancelledError:
            conn.task = None
            if not conn.timed_out:
                raise  # shutdown or a reset while connecting: not the target's fault
            self._connect_failed(conn, "connect timed out")
        except OSError as exc:
            conn.task = None
            self._connect_failed(conn, exc.strerror or type(exc).__name__)
        else:
            conn.task = None

    def connected(self, conn: MirrorConnection) -> None:
        """A connection is established: send what was written while it connected."""
        transport = conn.transport
        assert transport is not None
        if conn.dead or self._closing:
            transport.abort()
            return
        transport.set_write_buffer_limits(high=0)
        if self._probe is conn:
            self._probe = None
        if self._retry_at:
            self._retry_at = 0.0
            failures = self._backoff.failures
            self._backoff.success()
            # Its own rate-limit key: a flapping target cannot fill the log either.
            self._errors.event(
                self.name + " up", at="mirror_up", target=self.name, attempts=failures + 1
            )
        self.counters.mirrored += conn.queued
        conn.queued = 0
        self.waiting -= conn.chunks_size
        conn.flush()

    def _connect_failed(self, conn: MirrorConnection, reason: str) -> None:
        lost = conn.queued + (1 if conn.owned else 0)
        self._kill(conn)
        if self._closing:
            return
        self.counters.failed += lost
        delay = self._backoff.failure()
        self._retry_at = asyncio.get_running_loop().time() + delay
        self._errors.event(
            self.name,
            at="mirror_error",
            target=self.name,
            error=reason,
            retry_in=delay,
            failed=self.counters.failed,
        )

    def lost(self, conn: MirrorConnection, exc: Exception | None) -> None:
        """A connection closed, by the target, by a reset of ours, or at shutdown."""
        was_dead = conn.dead
        self._kill(conn)
        if was_dead or self._closing:
            return
        counters = self.counters
        if conn.owned:
            counters.failed += 1  # the stream in progress is cut
        unanswered = 0 if self.gor else conn.requests - conn.answered
        if unanswered > 0:
            # An HTTP target closed with requests unanswered: those copies are lost.
            counters.mirrored -= unanswered
            counters.failed += unanswered
        if exc is None:
            if unanswered > 0 and conn.answered and not conn.retired:
                # It closed a busy connection after `answered` requests: its limit.
                self._request_limit = min(self._request_limit, conn.answered)
                self._errors.event(
                    self.name,
                    at="mirror_error",
                    target=self.name,
                    error="target closed a connection with requests unanswered",
                    lost=unanswered,
                    requests_per_connection=self._request_limit,
                )
            elif self._verbose:
                self._log.event(at="mirror_closed", target=self.name, requests=conn.requests)
            return
        # A reset: new connections wait for the backoff, so a target that accepts and
        # resets gets no more connection attempts than one that refuses.
        delay = self._backoff.failure()
        self._retry_at = asyncio.get_running_loop().time() + delay
        self._errors.event(
            self.name,
            at="mirror_error",
            target=self.name,
            error=str(exc) or type(exc).__name__,
            retry_in=delay,
        )

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make sure the watchdog runs while connections are connecting or retired.

        One timer per target, not one per connection: with `Connection: close` clients
        a raw target gets a connection per request.
        """
        if self._watchdog is None and not self._closing:
            self._watchdog = loop.call_later(WATCHDOG_INTERVAL, self._check_overdue)

    def _check_overdue(self) -> None:
        self._watchdog = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        waiting = False
        for conn in list(self._live):
            if conn.retired or conn.transport is None:
                if conn.overdue(now):
                    if conn.retired:
                        self._kill(conn)
                    else:
                        conn.connect_timed_out()
                else:
                    waiting = True
        if waiting:
            self._watch(loop)

    def _retire(self, conn: MirrorConnection, finish: Finish) -> None:
        """Take no new requests on `conn`; it closes once the target has answered."""
        self._conns.remove(conn)
        conn.retired = True
        if self._current is conn:
            self._current = None
        conn.finish = finish
        if finish and conn.transport is not None and not conn.chunks:
            conn.flush()  # nothing corked: finish now
        if finish != Finish.CLOSE:
            loop = asyncio.get_running_loop()
            conn.since = loop.time()
            self._watch(loop)

    def _reset(self, conn: MirrorConnection, reason: str) -> None:
        """Cut a stream whose target fell behind: count the request, close the connection."""
        self._kill(conn)
        self._drop(reason)
        if reason == "behind":
            self._reopen_at = asyncio.get_running_loop().time() + REOPEN_AFTER_RESET

    def _kill(self, conn: MirrorConnection) -> None:
        """Forget `conn` and close it now, abandoning what it has not sent."""
        conn.dead = True
        conn.discard()
        self.unanswered -= conn.in_flight  # those copies are not in flight any more
        conn.in_flight = conn.uncounted = 0
        conn.weights.clear()
        if not conn.retired:
            try:
                self._conns.remove(conn)
            except ValueError:
                pass
        self._live.discard(conn)
        self.backlogged.discard(conn)
        if self._probe is conn:
            self._probe = None
        if self._current is conn:
            self._current = None
        if conn.transport is not None:
            conn.transport.abort()
        elif conn.task is not None:
            conn.task.cancel()

    def _drop(self, reason: str) -> None:
        self.counters.dropped += 1
        self._errors.event(
            self.name,
            at="mirror_drop",
            target=self.name,
            reason=reason,
            behind=self.behind(),
            dropped=self.counters.dropped,
        )

    # ---- shutdown -------------------------------------------------------------------

    @property
    def flushed(self) -> bool:
        """True when nothing is waiting to be sent to this target."""
        return not self.unsent and not self.backlogged

    def close(self) -> None:
        """Close every connection; bytes still unsent are abandoned.

        Flushed connections close with a FIN, not a reset: a reset could make the target
        discard copies it has received but not read yet.
        """
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for conn in list(self._live):
            conn.discard()
            transport = conn.transport
            if transport is None:
                if conn.task is not None:
                    conn.task.cancel()
            elif transport.get_write_buffer_size():
                transport.abort()
            else:
                transport.close()
