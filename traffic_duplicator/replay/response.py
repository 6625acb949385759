"""Reads one HTTP/1.x response incrementally, to find where it ends; the body is discarded.

Framing follows RFC 9112 section 6.3: no body for HEAD, 1xx, 204 and 304; chunked wins
over Content-Length; otherwise the body runs until the connection closes. Interim 1xx
responses (100 Continue) are skipped. Body bytes are scanned, never stored.
"""

from __future__ import annotations

from traffic_duplicator.http1 import ChunkedScanner, FramingError, LengthScanner

MAX_RESPONSE_HEAD = 64 * 1024


def _header(lower_head: bytes, marker: bytes) -> bytes | None:
    """The trimmed value after `marker` (CRLF + lower-case name + colon), or None."""
    at = lower_head.find(marker)
    if at < 0:
        return None
    start = at + len(marker)
    return lower_head[start : lower_head.find(b"\r\n", start)].strip(b" \t")


class ResponseError(ValueError):
    """Bytes that are not a valid HTTP/1.x response."""


class ResponseParser:
    """Feed bytes until `done`; then `status`, `keep_alive` and `location` are known."""

    __slots__ = (
        "_buffer",
        "_head_request",
        "_scanner",
        "_until_close",
        "done",
        "keep_alive",
        "location",
        "started",
        "status",
    )

    def __init__(self, head_request: bool = False) -> None:
        self._head_request = head_request
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
        status_line = head[: head.find(b"\r\n")]
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ResponseError(f"bad status line {status_line[:60]!r}")
        status = int(parts[1])
        if 100 <= status < 200 and status != 101:
            return True
        version11 = parts[0] == b"HTTP/1.1"
        # Only four headers matter for framing and redirects; finding them in the
        # lower-cased head is several times faster than splitting every line.
        lower = head.lower()
        length: int | None = None
        value = _header(lower, b"\r\ncontent-length:")
        if value is not None:
            if not value.isdigit():
                raise ResponseError("bad Content-Length")
            length = int(value)
        value = _header(lower, b"\r\ntransfer-encoding:")
        chunked = value is not None and value.endswith(b"chunked")
        value = _header(lower, b"\r\nconnection:")
        tokens = {t.strip() for t in value.split(b",")} if value is not None else set()
        at = lower.find(b"\r\nlocation:")
        if at >= 0:
            start = at + len(b"\r\nlocation:")
            self.location = head[start : head.find(b"\r\n", start)].strip(b" \t")
        self.status = status
        self.keep_alive = (b"close" not in tokens) if version11 else (b"keep-alive" in tokens)
        if status == 101:
            self._finish(extra=False)
            self.keep_alive = False  # the connection now speaks another protocol
        elif self._head_request or status in (204, 304):
            self._finish(extra=False)
        elif chunked:
            self._scanner = ChunkedScanner()
        elif length is not None:
            self._scanner = LengthScanner(length)
            if self._scanner.done:
                self._finish(extra=False)
        else:
            self._until_close = True
            self.keep_alive = False
        return False

    def _finish(self, extra: bool) -> None:
        self.done = True
        self._scanner = None
        if extra:
            self.keep_alive = False
