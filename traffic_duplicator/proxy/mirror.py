"""Mirror targets: per-target pools of persistent connections, bounded buffers, drop policy.

Every client connection shares its target's few connections, so a load of short client
connections (`Connection: close`) does not turn into a connection per request here. A
request is written whole to one connection; a request that arrives in pieces (a stream)
owns its connection until its end, so two requests never interleave on one connection.

Writes are corked: the requests of every client read in an event-loop iteration go to a
raw-HTTP target in one send, and a gor:// target's for GOR_LINGER (1 ms) at most. On
loopback a send costs far more than the Python around it (it runs the receiver's TCP
stack and wakes the receiver), so this is the mirror's main saving. A gor:// target is
usually the replayer on the same dyno, sharing its CPUs with the app: one wake-up per
millisecond instead of one per request leaves those CPUs to production. Raw-HTTP copies
are not held longer than an iteration, since more of them in one send would be
pipelined on one connection to a server that may handle pipelining poorly.

Bounded memory: the bytes a target is behind by are capped; corked bytes are not
counted, they are handed over within the iteration or the linger, and past
connection.LINGER_BYTES before the next request is taken (`_spill`), so that the cap
counts them in the transports. Behind means not yet known to have arrived: waiting for a
connection to be established, in a transport's buffer, or, for a raw-HTTP target, handed
over but not answered yet. Every raw request gets a response, so the copies a target
that stops reading leaves in the kernel's socket buffers (about 1 MB per connection,
outside our RSS) count too, retired connections included; a gor:// target never answers,
so only our own buffers can be counted for it. At a request's start, a target over its
cap loses the whole request (`dropped`). Open connections, retired ones included, are
capped as well. A stream that pushes the target over the cap mid-request has its
connection reset and is counted `dropped`; the client's next request starts on another
connection. A target that refuses, times out or breaks is `failed`; new connections to
it wait for a capped backoff, and while it is down its requests fail at once instead of
waiting anywhere.

May a target get new connections (up, backing off, probing, resetting)? The state machine
in `health` says. The two framings (raw HTTP, gor) are strategies in `framing`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, TypedDict

from traffic_duplicator.logs import EventLog, LogValue, RateLimitedLog
from traffic_duplicator.proxy.config import MirrorConfig, TargetKind, TargetSpec
from traffic_duplicator.proxy.connection import (
    LINGER_BYTES,
    Cancellable,
    Finish,
    MirrorConnection,
)
from traffic_duplicator.proxy.counters import TargetCounters
from traffic_duplicator.proxy.dialer import Clock, Dial, TcpDialer
from traffic_duplicator.proxy.framing import Framing, GorFraming, RawHttp
from traffic_duplicator.proxy.health import TargetHealth, TargetState

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's from Python 3.11 on

__all__ = ["MirrorConnection", "MirrorTarget"]  # tap imports both from here

# Many HTTP servers close a keep-alive connection after N requests (nginx: 1000 since
# 1.19.10, 100 before; Apache: 100), dropping copies pipelined behind the Nth. We retire
# a raw-HTTP connection first, cleanly, with a half-close after its last request. A
# target that closes sooner teaches us its limit (see MirrorTarget.lost).
MAX_REQUESTS_PER_CONNECTION = 1000
WATCHDOG_INTERVAL = 0.5
# Connections beyond the pool size, opened when every pooled one is owned by a stream
# (or, with `Connection: close` clients, one per request). Retired connections count:
# at this many open connections no new one is opened.
MAX_EXTRA_CONNECTIONS = 64
# How long a gor:// target's copies may wait to share one send (module docstring).
GOR_LINGER = 0.001


class TargetOptions(TypedDict, total=False):
    """MirrorTarget's optional keywords; transcript tests pass a fake `loop` and `dial`."""

    verbose: bool  # log every connection the target closes
    loop: Clock  # default: the running loop when needed (targets are built before it runs)
    dial: Dial  # default: TCP to `host`


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
        **options: Unpack[TargetOptions],
    ) -> None:
        self.name = str(spec)
        self._framing: Framing = GorFraming() if spec.kind is TargetKind.GOR else RawHttp()
        self.counters = TargetCounters()
        self.unsent = 0  # bytes in connections' chunks
        self.waiting = 0  # of those, bytes for connections still being established
        # Raw HTTP: bytes of whole requests handed to transports, not answered yet.
        self.unanswered = 0
        self.backlogged: set[MirrorConnection] = set()  # transports holding unsent bytes
        self._cap = config.buffer_bytes
        self._size = config.connections
        self._conns: list[MirrorConnection] = []  # take requests: pooled, extra, connecting
        self._live: set[MirrorConnection] = set()  # every connection not yet lost
        self._next = 0  # round-robin position in _conns
        self._current: MirrorConnection | None = None  # whole requests' pick until the flush
        self._dirty: list[MirrorConnection] = []
        self._flush_scheduled = False
        self._linger = GOR_LINGER if spec.kind is TargetKind.GOR else 0.0
        self._flush_timer: Cancellable | None = None
        self._health = TargetHealth()
        self._errors = errors
        self._log = log
        self._verbose = options.get("verbose", False)
        self._closing = False
        self._request_limit = MAX_REQUESTS_PER_CONNECTION
        self._watchdog: Cancellable | None = None
        self._clock = options.get("loop")
        self._dial = options.get("dial") or TcpDialer(host, spec.address.port, self.name)

    def _loop(self) -> Clock:
        return self._clock if self._clock is not None else asyncio.get_running_loop()

    @property
    def state(self) -> TargetState:
        """Whether the target may get new connections (see `health`)."""
        return self._health.state

    # ---- requests -------------------------------------------------------------------

    def send(self, data: bytes, close: bool) -> None:
        """Mirror one whole request (all its bytes are here)."""
        if self.unsent - self.waiting > LINGER_BYTES:
            self._spill()
        if self.waiting + self.unanswered >= self._cap or (
            self.backlogged and self.behind() >= self._cap
        ):
            self._drop("behind")
            return
        framing = self._framing
        framed = framing.whole(data)
        if framed is None:
            self._drop("separator")
            return
        conn = self._current  # this batch's connection (one iteration, or gor://'s linger)
        if conn is None or conn.owned:
            conn = self._pick()
            if conn is None:
                return
        conn.write(framed)
        self._written(conn)
        framing.written(conn, len(framed))
        finish = framing.retire(close, conn.requests, self._request_limit)
        if finish is not None:
            self._retire(conn, finish)

    def begin(self, data: bytes, close: bool) -> MirrorConnection | None:
        """Start mirroring a request whose end has not arrived; None if it is not mirrored."""
        if self.unsent - self.waiting > LINGER_BYTES:
            self._spill()
        if self.behind() >= self._cap:
            self._drop("behind")
            return None
        framed = self._framing.head(data)
        if framed is None:
            self._drop("separator")
            return None
        conn = self._pick()
        if conn is None:
            return None
        conn.owned = True
        conn.close_after = close
        conn.streamed = len(data)
        self._framing.started(conn, data)
        conn.write(framed)
        self._check_stream(conn)
        return conn

    def stream(self, conn: MirrorConnection, data: bytes) -> None:
        """More bytes of the request `conn` carries."""
        if conn.dead:
            return
        if not self._framing.piece(conn, data):
            self._reset(conn, "separator")
            return
        conn.streamed += len(data)
        conn.write(data)
        self._check_stream(conn)

    def end(self, conn: MirrorConnection) -> None:
        """The request `conn` carries is complete."""
        if conn.dead:
            return
        framing = self._framing
        self.unanswered += framing.ended(conn)
        conn.owned = False
        self._written(conn)
        finish = framing.retire(conn.close_after, conn.requests, self._request_limit)
        if finish is not None:
            self._retire(conn, finish)
        elif len(self._conns) > self._size:
            self._retire(conn, framing.surplus_finish)  # shrink back after a burst of streams

    def abandon(self, conn: MirrorConnection) -> None:
        """The client stopped mid-request: the partial copy must not reach the target."""
        if not conn.dead:
            self.counters.dropped += self._kill(conn)

    def _written(self, conn: MirrorConnection) -> None:
        """A request is complete on `conn`: mirrored, or queued until it connects."""
        conn.requests += 1
        if conn.transport is not None:
            self.counters.mirrored += 1
        else:
            conn.queued += 1

    def _check_stream(self, conn: MirrorConnection) -> None:
        if self.unsent - self.waiting > LINGER_BYTES:
            self._spill()
        if self.behind() > self._cap:
            self._reset(conn, "behind")

    def _backlog(self, uncounted: bool = False) -> int:
        """Bytes in transport buffers; `uncounted`: only those not in `unanswered`."""
        backlogged = self.backlogged
        if not backlogged:
            return 0
        every = not (uncounted and self._framing.answers)
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

    # ---- corking --------------------------------------------------------------------

    def dirty(self, conn: MirrorConnection) -> None:
        """`conn` got its first unsent bytes: flush them at the iteration's end, or after
        the linger (gor://)."""
        self._dirty.append(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            if self._linger:
                self._flush_timer = self._loop().call_later(self._linger, self._flush)
            else:
                self._loop().call_soon(self._flush)

    def hurry(self) -> None:
        """More than LINGER_BYTES are corked: flush at the iteration's end, not later."""
        timer = self._flush_timer
        if timer is not None:
            timer.cancel()
            self._flush_timer = None
            self._loop().call_soon(self._flush)

    def _spill(self) -> None:
        """More than LINGER_BYTES are corked for connections that are up: hand them to the
        transports now, where `behind` counts what the target does not take.

        Flushing at the iteration's end (`hurry`) is not a bound by itself: libuv (uvloop)
        reads a ready socket up to 32 times in one iteration, and every client's reads come
        before the iteration's callbacks, so a target that stopped reading once let
        hundreds of megabytes pile up corked, uncounted.
        """
        timer = self._flush_timer
        if timer is not None:
            timer.cancel()
        self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._flush_timer = None
        self._current = None  # the next batch's requests go to the next connection
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
        free = self._next_free(keeping_up=True)
        if free is not None:
            return free
        health = self._health
        if health.state is not TargetState.UP:
            if health.down:
                return self._pick_while_down()
            if health.paused(self._loop().time()):
                return self._free_or_drop("behind")
        return self._pick_up()

    def _pick_while_down(self) -> MirrorConnection | None:
        """One attempt at a time, once the backoff has passed; otherwise fail at once."""
        health = self._health
        if health.may_probe(self._loop().time()):
            health.probing(self._open())
        probe = health.probe
        if probe is None or probe.owned:
            self.counters.failed += 1
            return None
        self._current = probe
        return probe

    def _pick_up(self) -> MirrorConnection | None:
        """Grow the pool to its size, then share it; beyond, open extra connections."""
        if len(self._live) >= self._size + MAX_EXTRA_CONNECTIONS:
            # Retired connections still waiting for their answers hold the rest.
            return self._free_or_drop("connections")
        if len(self._conns) < self._size:
            self._current = self._open()
            return self._current
        return self._next_free(keeping_up=False) or self._open()

    def _next_free(self, keeping_up: bool) -> MirrorConnection | None:
        """The next connection in turn that no stream owns (round robin); `keeping_up`:
        only one that is connected and not behind. It takes this iteration's requests."""
        conns = self._conns
        count = len(conns)
        backlogged = self.backlogged
        start = self._next
        for offset in range(count):
            index = (start + offset) % count
            conn = conns[index]
            if conn.owned or (keeping_up and (conn.transport is None or conn in backlogged)):
                continue
            self._next = index + 1
            self._current = conn
            return conn
        return None

    def _free_or_drop(self, reason: str) -> MirrorConnection | None:
        """No new connection may be opened: a free one, or the request is dropped."""
        free = self._next_free(keeping_up=False)
        if free is None:
            self._drop(reason)
        return free

    def _open(self) -> MirrorConnection:
        conn = MirrorConnection(self)
        self._conns.append(conn)
        self._live.add(conn)
        conn.since = self._loop().time()
        conn.attempt = self._dial(conn)
        self._watch()
        return conn

    def connected(self, conn: MirrorConnection) -> None:
        """A connection is established: send what was written while it connected."""
        transport = conn.transport
        assert transport is not None
        conn.attempt = None
        if conn.dead or self._closing:
            transport.abort()
            return
        transport.set_write_buffer_limits(high=0)
        attempts = self._health.connected()
        if attempts is not None:
            # Its own rate-limit key: a flapping target cannot fill the log either.
            self._errors.event(
                self.name + " up", at="mirror_up", target=self.name, attempts=attempts
            )
        self.counters.mirrored += conn.queued
        conn.queued = 0
        self.waiting -= conn.chunks_size
        conn.flush()

    def connect_failed(self, conn: MirrorConnection, reason: str) -> None:
        """An attempt failed (refused, timed out, unreachable): back off."""
        if conn.dead:
            return  # already forgotten: a reset or a client gone while it connected
        lost = self._kill(conn) + (1 if conn.owned else 0)
        if self._closing:
            return
        self.counters.failed += lost
        self._back_off(reason, failed=self.counters.failed)

    def lost(self, conn: MirrorConnection, exc: Exception | None) -> None:
        """A connection closed, by the target, by a reset of ours, or at shutdown."""
        was_dead = conn.dead
        self._kill(conn)
        if was_dead or self._closing:
            return
        counters = self.counters
        if conn.owned:
            counters.failed += 1  # the stream in progress is cut
        unanswered = conn.requests - conn.answered if self._framing.answers else 0
        if unanswered > 0:
            # An HTTP target closed with requests unanswered: those copies are lost.
            counters.mirrored -= unanswered
            counters.failed += unanswered
        if exc is not None:
            self._back_off(str(exc) or type(exc).__name__)
        elif unanswered > 0 and conn.answered and not conn.retired:
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

    def _back_off(self, error: str, **fields: LogValue) -> None:
        """An attempt failed, or the target reset a connection: new connections wait for
        the backoff, so a target that accepts and resets gets no more than one that refuses."""
        delay = self._health.failed(self._loop().time())
        self._errors.event(
            self.name, at="mirror_error", target=self.name, error=error, retry_in=delay, **fields
        )

    def _watch(self) -> None:
        """Make sure the watchdog runs while connections are connecting or retired: one
        timer per target, as `Connection: close` clients get a raw target a connection each."""
        if self._watchdog is None and not self._closing:
            self._watchdog = self._loop().call_later(WATCHDOG_INTERVAL, self._check_overdue)

    def _check_overdue(self) -> None:
        self._watchdog = None
        now = self._loop().time()
        waiting = False
        for conn in list(self._live):
            if not conn.retired and conn.transport is not None:
                continue  # open and taking requests: nothing to watch
            if not conn.overdue(now):
                waiting = True
            elif conn.retired:
                self.counters.failed += self._kill(conn)
            else:
                self.connect_failed(conn, "connect timed out")
        if waiting:
            self._watch()

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
            conn.since = self._loop().time()
            self._watch()

    def _reset(self, conn: MirrorConnection, reason: str) -> None:
        """Cut a stream whose target fell behind: count the request (and any queued behind
        it on a connection not yet up), close the connection."""
        self.counters.dropped += self._kill(conn)
        self._drop(reason)
        if reason == "behind":
            self._health.reset(self._loop().time())

    def _kill(self, conn: MirrorConnection) -> int:
        """Forget `conn` and close it now, abandoning what it has not sent.

        Returns how many whole requests it held that never went out (it never connected)
        for the caller to count: every request is counted mirrored, dropped or failed.
        """
        conn.dead = True
        conn.discard()
        self.unanswered -= conn.in_flight  # those copies are not in flight any more
        conn.in_flight = conn.uncounted = 0
        conn.weights.clear()
        if not conn.retired and conn in self._conns:
            self._conns.remove(conn)
        self._live.discard(conn)
        self.backlogged.discard(conn)
        self._health.forget(conn)
        if self._current is conn:
            self._current = None
        if conn.transport is not None:
            conn.transport.abort()
        elif conn.attempt is not None:
            conn.attempt.cancel()
        lost, conn.queued = conn.queued, 0
        return lost

    def _drop(self, reason: str) -> None:
        """Count a request dropped for `reason`."""
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
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        for conn in list(self._live):
            conn.discard()
            transport = conn.transport
            if transport is None:
                # Still connecting: its queued requests never go out (counted, as all are).
                self.counters.dropped += conn.queued
                conn.queued = 0
                if conn.attempt is not None:
                    conn.attempt.cancel()
            elif transport.get_write_buffer_size():
                transport.abort()
            else:
                transport.close()
