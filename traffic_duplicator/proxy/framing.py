"""How a mirror target frames what it sends: raw HTTP/1.1, or gor's framing.

A target holds one of these two strategies and asks it at each step of a request; the
pool, the caps and the drop policy in `mirror` are the same for both.

- Raw HTTP (`host:port`): requests go as they came. The target answers every request
  (RFC 9112 section 9.3), so the answers tell what it has read: each request weighs in the
  target's `unanswered` bytes until its answer. `Connection: close` and the per-connection
  request limit retire a connection.
- gor (`gor://host:port`): each request is one message, `1 ID NANOS 0\\n` + payload +
  the separator (see `gorproto`, GoReplay's framing). A payload holding the
  separator cannot be framed and is dropped. gor never answers: nothing is counted as
  unanswered, and a connection is never retired for a request limit.
"""

from __future__ import annotations

import os
import time
from typing import Protocol

from traffic_duplicator.gorproto import REQUEST, SEPARATOR
from traffic_duplicator.proxy.connection import Finish, MirrorConnection

# What a raw-HTTP request that arrived in pieces (a stream) weighs, at most, among the
# unanswered bytes once it is complete (see RawHttp.ended).
STREAM_IN_FLIGHT = 64 * 1024
_SEPARATOR_TAIL = len(SEPARATOR) - 1


class Framing(Protocol):
    """The steps of mirroring a request where the two framings differ."""

    # Every request is answered, so unanswered copies can be counted as behind.
    answers: bool
    # How a connection beyond the pool's size is let go after the stream it carried.
    surplus_finish: Finish

    def whole(self, data: bytes) -> bytes | None:
        """The bytes to write for a whole request; None if it cannot be framed."""

    def head(self, data: bytes) -> bytes | None:
        """The bytes to write for a stream's first piece; None if it cannot be framed."""

    def started(self, conn: MirrorConnection, data: bytes) -> None:
        """A stream's first piece `data` was written to `conn`."""

    def piece(self, conn: MirrorConnection, data: bytes) -> bool:
        """False if the stream's next piece `data` cannot be framed."""

    def written(self, conn: MirrorConnection, size: int) -> None:
        """A whole request of `size` bytes was written to `conn` (still corked)."""

    def ended(self, conn: MirrorConnection) -> int:
        """The stream on `conn` is complete; the bytes it adds to `unanswered`."""

    def retire(self, close: bool, requests: int, limit: int) -> Finish | None:
        """How a connection that carried `requests` ends after this one; None: it stays."""


class RawHttp:
    """Requests as they came; every answer releases its request from `unanswered`."""

    __slots__ = ()
    answers = True
    surplus_finish = Finish.HALF_CLOSE

    def whole(self, data: bytes) -> bytes | None:
        return data

    def head(self, data: bytes) -> bytes | None:
        return data

    def started(self, conn: MirrorConnection, data: bytes) -> None:
        pass

    def piece(self, conn: MirrorConnection, data: bytes) -> bool:
        return True

    def written(self, conn: MirrorConnection, size: int) -> None:
        # Counted in `unanswered` once handed to the transport (MirrorConnection.flush).
        conn.weights.append(size)
        conn.uncounted += size

    def ended(self, conn: MirrorConnection) -> int:
        # While it streamed, a stalled target would have left it behind (and reset it):
        # at its end, at most its last part can still be unread.
        weight = min(conn.streamed, STREAM_IN_FLIGHT)
        conn.weights.append(weight)
        conn.in_flight += weight
        return weight

    def retire(self, close: bool, requests: int, limit: int) -> Finish | None:
        if close:
            return Finish.NONE  # the request's own `Connection: close` ends it
        if requests >= limit:
            return Finish.HALF_CLOSE
        return None


class GorFraming:
    """gor messages: a header with a unique ID and the time, the payload, the separator."""

    __slots__ = ("_id_counter", "_id_prefix")
    answers = False
    surplus_finish = Finish.CLOSE

    def __init__(self) -> None:
        # IDs: 24 hex digits like gor's; here a random prefix per target and a counter.
        self._id_prefix = os.urandom(8).hex().encode()
        self._id_counter = 0

    def _header(self) -> bytes:
        self._id_counter = (self._id_counter + 1) & 0xFFFFFFFF
        return b"%s %s%08x %d 0\n" % (REQUEST, self._id_prefix, self._id_counter, time.time_ns())

    def whole(self, data: bytes) -> bytes | None:
        if SEPARATOR in data:
            return None
        return b"".join((self._header(), data, SEPARATOR))

    def head(self, data: bytes) -> bytes | None:
        if SEPARATOR in data:
            return None
        return self._header() + data

    def started(self, conn: MirrorConnection, data: bytes) -> None:
        conn.tail = data[-_SEPARATOR_TAIL:]

    def piece(self, conn: MirrorConnection, data: bytes) -> bool:
        # The separator may be split between two reads: look across the boundary too.
        if SEPARATOR in data or SEPARATOR in conn.tail + data[:_SEPARATOR_TAIL]:
            return False
        if len(data) >= _SEPARATOR_TAIL:
            conn.tail = data[-_SEPARATOR_TAIL:]
        else:
            conn.tail = (conn.tail + data)[-_SEPARATOR_TAIL:]
        return True

    def written(self, conn: MirrorConnection, size: int) -> None:
        pass

    def ended(self, conn: MirrorConnection) -> int:
        conn.write(SEPARATOR)
        return 0

    def retire(self, close: bool, requests: int, limit: int) -> Finish | None:
        return None
