"""One connection to a mirror target: corked writes, and the answers it reads and discards."""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from traffic_duplicator.proxy.mirror import MirrorTarget

CONNECT_TIMEOUT = 3.0
# A retired connection waits this long for the target to answer and close it.
RETIRE_LINGER = 30.0
# Corked bytes beyond this go at the iteration's end, not after a gor:// target's linger.
LINGER_BYTES = 64 * 1024
# What starts each answer of a raw-HTTP target (RFC 9112 section 4: the status line), and
# how many bytes of a read are kept to find one split between two reads.
_MARKER = b"HTTP/1."
_CARRY = len(_MARKER) - 1


class Cancellable(Protocol):
    """A connection attempt in flight (an asyncio task in production)."""

    def cancel(self) -> object: ...


class Finish(enum.IntEnum):
    """What a retired connection does once its last bytes are handed to the transport."""

    NONE = 0
    HALF_CLOSE = 1  # raw HTTP: the target answers, sees our EOF and closes
    CLOSE = 2  # gor: there is nothing to answer


class MirrorConnection(asyncio.Protocol):
    """One connection to a target; it discards whatever the target answers."""

    __slots__ = (
        "answer_tail",
        "answered",
        "attempt",
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
        # The connection attempt while it is in flight: a reference keeps the task alive.
        self.attempt: Cancellable | None = None
        self.since = 0.0  # loop time it started connecting, or was retired
        self.answered = 0  # raw HTTP: responses seen (status lines counted, not parsed)
        self.answer_tail = b""  # raw HTTP: the last read's end, for a marker split in two
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
        elif target.unsent - target.waiting > LINGER_BYTES:
            # Only bytes for connections that are up can leave early: those waiting for
            # a connection go when it is made, whatever the linger.
            target.hurry()

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
        # roughly (a body could hold "HTTP/1."; it only makes the count generous). A marker
        # cut by a read boundary is found in the last read's end joined to this one's
        # start: shorter than the marker each, so no marker is counted twice.
        seen = data.count(_MARKER)
        before = self.answer_tail
        if before:
            seen += (before + data[:_CARRY]).count(_MARKER)
        self.answer_tail = data[-_CARRY:] if len(data) >= _CARRY else (before + data)[-_CARRY:]
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

    def overdue(self, now: float) -> bool:
        """Connecting for too long, or retired and still not closed by the target."""
        limit = RETIRE_LINGER if self.retired else CONNECT_TIMEOUT
        return now - self.since > limit and (self.retired or self.transport is None)
