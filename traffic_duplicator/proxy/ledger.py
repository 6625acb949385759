"""One client connection's requests waiting for production's response, and the recorder.

With comparison on, every request the app is sent gets an entry here, in order, because
HTTP/1.1 answers requests in order (RFC 9112 section 9.3): the Nth final response the app
sends answers the Nth request. The tap reports each request's steps; the tracker feeds
the app's bytes; the ledger pairs each complete response with its request and says where
production's response must go (`Outcome`). It does no I/O and reads the time from an
injected clock, so transcript tests drive it directly.

    tap (client side)                 tracker (app side)
    head_request()  next one is HEAD  response_bytes(data) -> [Outcome]
    begin()         a request starts  app_eof()            -> [Outcome]
    end()           a request ends
    copied(copies)  where its copies went (after end)
    cut()           the started request will never end
    stop()          no more requests are tracked

The copies of a request (opaque here: one per gor:// target that took it, with the id and
the connection of its type 1 message) are given only once the request has ended, so an
`Outcome` never names a type 1 message that is not complete: a type 2 can never be sent
before its type 1. A response that ends before its request (an early 413, say) makes the
copies given later come back `False` from `copied`, for the caller to count as dropped.

Bounded: at most `limit` entries (a client pipelining deeper turns recording off for the
connection, and `begin`/`end` hand back the copies abandoned, to be counted); the
recorder keeps at most a response head and `body_limit` body bytes. Recording ends for
good on a tunnel (101), on bytes that are not HTTP, or once `stop` was called and every
request tracked before it has its response.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from traffic_duplicator.compare.capture import MAX_EXPECTED, ResponseRecorder
from traffic_duplicator.compare.model import DEFAULT_BODY_LIMIT, CapturedResponse

C = TypeVar("C")  # one copy of a request: the caller's (target, id, connection)

# As deep as the recorder remembers HEAD requests, so that the two never disagree.
MAX_PENDING = MAX_EXPECTED
_NONE: tuple[()] = ()  # no copies abandoned: the usual answer, without a new list


# Production's complete response to a request that was copied: (the request's copies,
# the response, nanoseconds from the end of the request to the end of the response).
Outcome = tuple[list[C], CapturedResponse, int]


class _Entry(Generic[C]):
    """One request, from its start to its response's end."""

    __slots__ = ("answered", "copies", "ended")

    def __init__(self, ended: int = 0) -> None:
        self.ended = ended  # clock time of the request's end; 0 while it streams
        self.copies: list[C] = []
        self.answered = False


class Ledger(Generic[C]):
    """See the module docstring."""

    __slots__ = ("_clock", "_entries", "_head", "_last", "_limit", "_open", "_stopped", "recorder")

    def __init__(
        self,
        body_limit: int = DEFAULT_BODY_LIMIT,
        clock: Callable[[], int] = time.monotonic_ns,
        limit: int = MAX_PENDING,
    ) -> None:
        self.recorder: ResponseRecorder | None = ResponseRecorder(body_limit, headers=False)
        self._clock = clock
        self._limit = limit
        self._entries: deque[_Entry[C]] = deque()  # requests not answered yet, in order
        self._open: _Entry[C] | None = None  # the request that started and has not ended
        self._last: _Entry[C] | None = None  # the request that ended last: copies go there
        self._head = False  # the next request is a HEAD
        self._stopped = False

    @property
    def pending(self) -> int:
        """Requests waiting for their response."""
        return len(self._entries)

    # ---- the client's side ----------------------------------------------------------------

    def head_request(self) -> None:
        """The next request to start is a HEAD: its response has no body."""
        self._head = True

    def begin(self) -> Sequence[C]:
        """A request started and its end is in a later read; returns copies abandoned."""
        abandoned = self._new()
        self._open, self._last = self._last, None
        return abandoned

    def end(self) -> Sequence[C]:
        """A request ended (one that `begin` started, or a whole one); returns copies
        abandoned."""
        entry = self._open
        if entry is not None:
            self._open = None
            entry.ended = self._clock()
            self._last = entry
            return _NONE
        return self._new(self._clock())

    def copied(self, copies: list[C]) -> bool:
        """The request that ended last went to `copies`; False if no type 2 will follow."""
        entry = self._last
        self._last = None
        if entry is None or entry.answered or self.recorder is None:
            return False
        entry.copies = copies
        return True

    def cut(self) -> None:
        """The started request will never end: it keeps its place, with no copies."""
        self._open = None

    def stop(self) -> None:
        """No more requests are tracked (CONNECT, an upgrade, framing we cannot follow)."""
        self._stopped = True
        self._open = self._last = None
        if not self._entries:
            self.recorder = None

    def _new(self, ended: int = 0) -> Sequence[C]:
        """Track the next request (made `_last`); returns copies abandoned on overflow."""
        self._last = None
        recorder = self.recorder
        if self._stopped or recorder is None:
            return _NONE
        if len(self._entries) >= self._limit:
            return self._give_up()
        entry: _Entry[C] = _Entry(ended)
        recorder.expect(self._head)
        self._head = False
        self._entries.append(entry)
        self._last = entry
        return _NONE

    def _give_up(self) -> list[C]:
        abandoned = [copy for entry in self._entries for copy in entry.copies]
        self._entries.clear()
        self.recorder = None
        self._stopped = True
        self._open = self._last = None
        return abandoned

    # ---- the app's side -------------------------------------------------------------------

    def response_bytes(self, data: bytes) -> list[Outcome[C]]:
        """The app sent `data`: the copied requests whose response it completes."""
        recorder = self.recorder
        if recorder is None:
            return []
        responses = recorder.feed(data)
        if recorder.stopped:  # a tunnel, or bytes that are not HTTP: nothing more to pair
            self._entries.clear()
            self.recorder = None
            self._stopped = True
            return []
        entries = self._entries
        if len(responses) == 1 and entries and not self._stopped:
            # The usual case, paired in line: one response, for a request still tracked.
            entry = entries.popleft()
            entry.answered = True
            if entry.copies:
                return [(entry.copies, responses[0], self._clock() - entry.ended)]
            return []
        return self._pair(responses) if responses else []

    def app_eof(self) -> list[Outcome[C]]:
        """The app closed its side: a body that runs until the close is complete."""
        recorder = self.recorder
        if recorder is None:
            return []
        outcomes = self._pair(recorder.eof())
        self.recorder = None
        self._entries.clear()
        return outcomes

    def _pair(self, responses: list[CapturedResponse]) -> list[Outcome[C]]:
        outcomes: list[Outcome[C]] = []
        entries = self._entries
        now = self._clock()
        for response in responses:
            if not entries:
                break  # a response to a request not tracked (after stop)
            entry = entries.popleft()
            entry.answered = True
            if entry.copies:
                outcomes.append((entry.copies, response, now - entry.ended))
        if self._stopped and not entries:
            self.recorder = None
        return outcomes
