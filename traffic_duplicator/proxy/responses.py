"""Tracks where the app's responses end on one connection, without changing a byte.

The relay needs this for two things only: shutdown (a keep-alive connection is idle when
every request forwarded has its complete response) and upgrades (`101` turns the
connection into a tunnel; any other final answer leaves it HTTP). Bodies are delimited by
the rules of RFC 9112 section 6.3: no body after a HEAD request or for 1xx/204/304; then
Transfer-Encoding, then Content-Length, else the body runs until the app closes.
"""

from __future__ import annotations

from collections import deque

from traffic_duplicator.http1 import ChunkedScanner, FramingError

MAX_RESPONSEHEAD = 64 * 1024


# Tracker states. Plain ints, not an IntEnum: CPython's fast path for comparisons is
# for exact ints, and these are compared on every response.
HEAD = 0  # waiting for (more of) a status line and headers
LENGTH = 1  # inside a body of known length
CHUNKED = 2  # inside a chunked body
UNTIL_CLOSE = 3  # the body ends when the app closes: never idle again
TUNNEL = 4  # after 101 Switching Protocols: not HTTP any more
LOST = 5  # bytes we cannot read as responses: never idle again


class ResponseTracker:
    """Counts complete responses in the app-to-client byte stream of one connection."""

    __slots__ = (
        "_buffer",
        "_head_requests",
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
        self._head_requests: deque[int] = deque()
        self.completed = 0  # responses complete, i.e. requests fully answered
        self.finals = 0  # final (non-1xx) response heads seen
        self.progress = 0  # bumps on every head or completion, for cheap change checks

    def expect_head(self, index: int) -> None:
        """Request number `index` (from 0) is a HEAD request: its response has no body."""
        self._head_requests.append(index)

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
                    if size - pos > MAX_RESPONSEHEAD:
                        raise FramingError("response head too large")
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
            if len(joined) > MAX_RESPONSEHEAD:
                raise FramingError("response head too large")
            self._buffer = joined
            return len(data)
        self._buffer = b""
        self._start(joined, 0, end + 4)
        return pos + end + 4 - base

    def _start(self, data: bytes, start: int, stop: int) -> None:
        """Read the head in data[start:stop] and enter the state that delimits its body."""
        code = data[start + 9 : start + 12]
        if (
            not code.isdigit()
            or not data.startswith(b"HTTP/1.", start)
            or data[start + 12] not in (32, 13)  # SP, or CR when the reason is empty
        ):
            raise FramingError("malformed status line")
        status = int(code)
        self.progress += 1
        if status < 200:
            if status == 101:
                self.state = TUNNEL
            # Other 1xx (100 Continue, 103 Early Hints) precede the final response.
            return
        self.finals += 1
        head_requests = self._head_requests
        if head_requests:
            index = self.completed
            while head_requests and head_requests[0] < index:
                head_requests.popleft()
            if head_requests and head_requests[0] == index:
                head_requests.popleft()
                self._complete()
                return
        if status in (204, 304):
            self._complete()
            return
        # Header names are case-insensitive: search a lower-cased copy that keeps the
        # CRLF ending the last header, so every header line starts and ends with one.
        lowered = data[start : stop - 2].lower()
        if lowered.find(b"\r\ntransfer-encoding:") >= 0:
            codings = _values(lowered, b"transfer-encoding")
            if codings.rsplit(b",", 1)[-1].strip(b" \t") == b"chunked":
                self._scanner = ChunkedScanner()
                self.state = CHUNKED
            else:
                self.state = UNTIL_CLOSE
            return
        found = lowered.find(b"\r\ncontent-length:")
        if found < 0:
            self.state = UNTIL_CLOSE
            return
        line_end = lowered.find(b"\r\n", found + 17)
        value = lowered[found + 17 : line_end].strip(b" \t")
        if not value.isdigit() or lowered.find(b"\r\ncontent-length:", line_end) >= 0:
            # Repeated, or a list such as "12, 12": every value must be the same.
            values = _values(lowered, b"content-length").split(b",")
            value = values[0].strip(b" \t")
            if not value.isdigit() or any(v.strip(b" \t") != value for v in values):
                raise FramingError("bad Content-Length")
        if len(value) > 18:
            raise FramingError("Content-Length too large")
        length = int(value)
        if length:
            self._remaining = length
            self.state = LENGTH
        else:
            self._complete()


def _values(lowered: bytes, name: bytes) -> bytes:
    """Every value of header `name`, joined by commas (a lower-cased head is searched)."""
    needle = b"\r\n" + name + b":"
    values = []
    pos = lowered.find(needle)
    while pos >= 0:
        start = pos + len(needle)
        end = lowered.find(b"\r\n", start)
        values.append(lowered[start:end].strip(b" \t"))
        pos = lowered.find(needle, end)
    return b",".join(values)
