"""Tracks where the app's responses end on one connection, without changing a byte.

The relay needs this for two things only: shutdown (a keep-alive connection is idle when
every request forwarded has its complete response) and upgrades (`101`, or a 2xx to
CONNECT, turns the connection into a tunnel; any other final answer leaves it HTTP).
Where each response ends is `http1.response.response_end`, the rule the replayer uses too.
"""

from __future__ import annotations

from collections import deque

from traffic_duplicator.http1.body import ChunkedScanner
from traffic_duplicator.http1.reasons import FramingError
from traffic_duplicator.http1.response import CHUNKED as CHUNKED_BODY
from traffic_duplicator.http1.response import INTERIM, MAX_RESPONSE_HEAD, response_end
from traffic_duplicator.http1.response import LENGTH as LENGTH_BODY
from traffic_duplicator.http1.response import TUNNEL as TUNNEL_AFTER
from traffic_duplicator.http1.response import UNTIL_CLOSE as UNTIL_CLOSE_BODY

# Tracker states. Plain ints, not an IntEnum: CPython's fast path for comparisons is
# for exact ints, and these are compared on every response.
HEAD = 0  # waiting for (more of) a status line and headers
LENGTH = 1  # inside a body of known length
CHUNKED = 2  # inside a chunked body
UNTIL_CLOSE = 3  # the body ends when the app closes: never idle again
TUNNEL = 4  # after 101 Switching Protocols or a 2xx to CONNECT: not HTTP any more
LOST = 5  # bytes we cannot read as responses: never idle again


class ResponseTracker:
    """Counts complete responses in the app-to-client byte stream of one connection."""

    __slots__ = (
        "_buffer",
        "_methods",
        "_remaining",
        "_scanner",
        "completed",
        "finals",
        "progress",
        "state",
    )

    def __init__(self) -> None:
        self.state = HEAD
        self._buffer = b""
        self._remaining = 0
        self._scanner: ChunkedScanner | None = None
        # (request index, method) for the requests whose method changes the framing.
        self._methods: deque[tuple[int, bytes]] = deque()
        self.completed = 0  # responses complete, i.e. requests fully answered
        self.finals = 0  # final (non-1xx) response heads seen
        self.progress = 0  # bumps on every head or completion, for cheap change checks

    def expect(self, index: int, method: bytes) -> None:
        """Request number `index` (from 0) is a HEAD or CONNECT: its response is framed apart."""
        self._methods.append((index, method))

    def app_eof(self) -> None:
        """The app closed its side (a recording subclass completes a body read to the end)."""

    @property
    def in_response(self) -> bool:
        """True while part of a response has been seen but not all of it."""
        return self.state != HEAD or bool(self._buffer)

    @property
    def tunnel(self) -> bool:
        return self.state == TUNNEL

    def feed(self, data: bytes) -> bool:
        """Account for `data`; True if a response head or a response end was in it."""
        state = self.state
        if state == LENGTH:
            # The hot path of large downloads: one subtraction per read.
            if len(data) < self._remaining:
                self._remaining -= len(data)
                return False
        elif state > CHUNKED:
            return False
        before = self.progress
        try:
            if state == HEAD and not self._buffer:
                # The common case: a read that starts with a whole head, often followed
                # by exactly its body.
                end = data.find(b"\r\n\r\n") + 4
                if end >= 4:
                    self._start(data, 0, end)
                    size = len(data)
                    if end < size:
                        if self.state == LENGTH and end + self._remaining == size:
                            self._remaining = 0
                            self._complete()
                        else:
                            self._scan(data, end)
                    return True
            self._scan(data, 0)
        except FramingError:
            self.state = LOST
            self._buffer = b""
            self._scanner = None
            self.progress += 1
        return self.progress != before

    def _scan(self, data: bytes, pos: int) -> None:
        size = len(data)
        while pos < size:
            state = self.state
            if state == HEAD:
                if self._buffer:
                    pos = self._split_head(data, pos)
                    continue
                end = data.find(b"\r\n\r\n", pos)
                if end < 0:
                    if size - pos > MAX_RESPONSE_HEAD:
                        raise FramingError("head_too_large")
                    self._buffer = data[pos:]
                    return
                self._start(data, pos, end + 4)
                pos = end + 4
            elif state == LENGTH:
                take = min(self._remaining, size - pos)
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._complete()
            elif state == CHUNKED:
                scanner = self._scanner
                assert scanner is not None
                pos = scanner.scan(data, pos)
                if scanner.done:
                    self._scanner = None
                    self._complete()
            else:
                return

    def _complete(self) -> None:
        self.completed += 1
        self.progress += 1
        self.state = HEAD

    def _split_head(self, data: bytes, pos: int) -> int:
        """A head split across reads (rare): search the joined bytes, map the end back."""
        base = len(self._buffer)
        joined = self._buffer + data[pos:]
        # The buffer alone held no blank line; one may straddle the join.
        end = joined.find(b"\r\n\r\n", max(base - 3, 0))
        if end < 0:
            if len(joined) > MAX_RESPONSE_HEAD:
                raise FramingError("head_too_large")
            self._buffer = joined
            return len(data)
        self._buffer = b""
        self._start(joined, 0, end + 4)
        return pos + end + 4 - base

    def _start(self, data: bytes, start: int, stop: int) -> None:
        """Read the head in data[start:stop] and enter the state that delimits its body."""
        method = self._method() if self._methods else b"GET"
        status, follows, length = response_end(data[start:stop], method)
        self.progress += 1
        if follows == INTERIM:
            return  # 100 Continue, 103 Early Hints: the final response follows
        if status != 101:
            self.finals += 1
        if follows == LENGTH_BODY:
            self._remaining = length
            self.state = LENGTH
        elif follows == CHUNKED_BODY:
            self._scanner = ChunkedScanner(strict=False)
            self.state = CHUNKED
        elif follows == UNTIL_CLOSE_BODY:
            self.state = UNTIL_CLOSE
        elif follows == TUNNEL_AFTER:
            self.state = TUNNEL
        else:
            self._complete()

    def _method(self) -> bytes:
        """The method of the request the next response answers, where it matters."""
        methods = self._methods
        index = self.completed
        while methods and methods[0][0] < index:
            methods.popleft()
        return methods[0][1] if methods and methods[0][0] == index else b"GET"
