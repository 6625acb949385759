"""Reads one HTTP/1.x response incrementally, to find where it ends; the body is discarded.

Where the response ends is `http1.response.response_end` (RFC 9112 section 6.3), the
rule the proxy's tracker uses too. Interim 1xx responses (100 Continue) are skipped.
Body bytes are scanned, never stored.
"""

from __future__ import annotations

from traffic_duplicator.http1 import response
from traffic_duplicator.http1.body import ChunkedScanner, LengthScanner
from traffic_duplicator.http1.reasons import FramingError
from traffic_duplicator.http1.response import MAX_RESPONSE_HEAD, field_values, response_end


class ResponseError(ValueError):
    """Bytes that are not a valid HTTP/1.x response."""


class ResponseParser:
    """Feed bytes until `done`; then `status`, `keep_alive` and `location` are known."""

    __slots__ = (
        "_buffer",
        "_method",
        "_scanner",
        "_until_close",
        "done",
        "keep_alive",
        "location",
        "started",
        "status",
    )

    def __init__(self, head_request: bool = False, method: bytes = b"GET") -> None:
        """`method` is the request's (HEAD and CONNECT change where the response ends)."""
        self._method = b"HEAD" if head_request else method
        self._buffer = b""
        self._scanner: LengthScanner | ChunkedScanner | None = None
        self._until_close = False
        self.started = False  # any byte received: a retry would not be safe
        self.done = False
        self.status = 0
        self.keep_alive = False
        self.location: bytes | None = None

    def feed(self, data: bytes) -> None:
        """Consume response bytes; raises ResponseError on garbage."""
        if data:
            self.started = True
        if self.done:
            self.keep_alive = False  # bytes after the response: do not trust this connection
            return
        if self._until_close:
            return
        scanner = self._scanner
        if scanner is not None:
            try:
                end = scanner.scan(data, 0)
            except FramingError as exc:
                raise ResponseError(str(exc)) from None
            if scanner.done:
                self._finish(extra=end < len(data))
            return
        self._buffer += data
        while not self.done and self._scanner is None and not self._until_close:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_RESPONSE_HEAD:
                    raise ResponseError("response head too large")
                return
            head, rest = self._buffer[: end + 4], self._buffer[end + 4 :]
            self._buffer = b""
            if self._parse_head(head):
                self._buffer = rest  # an interim 1xx: the real response follows
                continue
            if rest:
                self._after_head(rest)

    def _after_head(self, rest: bytes) -> None:
        """Bytes that followed a final response head: body, or junk after a bodiless one."""
        if self._scanner is not None:
            self.feed(rest)
        elif self.done:
            self.keep_alive = False

    def eof(self) -> None:
        """The connection closed: completes a body that runs until close, else an error."""
        if self._until_close and not self.done:
            self.done = True
            self.keep_alive = False
            return
        if not self.done:
            raise ResponseError("connection closed before the response ended")

    def _parse_head(self, head: bytes) -> bool:
        """Parse a status line and headers; True for an interim 1xx response to skip."""
        try:
            status, follows, length = response_end(head, self._method)
        except FramingError as exc:
            if exc.reason == "status_line":
                status_line = head[: head.find(b"\r\n")]
                raise ResponseError(f"bad status line {status_line[:60]!r}") from None
            raise ResponseError(str(exc)) from None
        if follows == response.INTERIM:
            return True
        # Connection and Location matter besides framing; finding them in the
        # lower-cased head is several times faster than splitting every line.
        lower = head[:-2].lower()
        tokens = {token.strip(b" \t") for token in field_values(lower, b"connection").split(b",")}
        at = lower.find(b"\r\nlocation:")
        if at >= 0:
            start = at + len(b"\r\nlocation:")
            self.location = head[start : head.find(b"\r\n", start)].strip(b" \t")
        self.status = status
        if head.startswith(b"HTTP/1.1"):
            self.keep_alive = b"close" not in tokens
        else:
            self.keep_alive = b"keep-alive" in tokens
        self._body(follows, length)
        return False

    def _body(self, follows: int, length: int) -> None:
        """Enter the state that finds the end of the body that follows the head."""
        if follows == response.LENGTH:
            self._scanner = LengthScanner(length)
        elif follows == response.CHUNKED:
            self._scanner = ChunkedScanner(strict=False)
        elif follows == response.UNTIL_CLOSE:
            self._until_close = True
            self.keep_alive = False
        else:
            self._finish(extra=False)
            if follows == response.TUNNEL:
                self.keep_alive = False  # the connection now speaks another protocol

    def _finish(self, extra: bool) -> None:
        self.done = True
        self._scanner = None
        if extra:
            self.keep_alive = False
