"""Incremental HTTP/1.x request framing over a byte stream, without changing a byte.

The tee proxy relays a client's bytes to the app untouched; it frames them only to know
where each request starts and ends, so that mirrors receive whole requests. The replayer
uses the same framer on its `--input-http` connections and on gor-framed payloads.

`RequestFramer.feed(data)` returns a list of events, each a tuple:

- `(HEAD, raw, head)`: a complete request head. `raw` holds the exact bytes from the
  request line to the blank line; `head` is the parsed `RequestHead`.
- `(BODY, raw)`: body bytes exactly as sent (chunk-size lines and trailers included).
- `(END,)`: the request is complete; the next byte starts a new request.
- `(OPAQUE, reason)`: the stream can no longer be framed (malformed bytes, a CONNECT
  or an upgrade). The framer then ignores everything it is fed; the bytes are still
  the relay's to pass on, only mirroring stops.
"""

from __future__ import annotations

import re
from typing import Any, Final

HEAD: Final = 0
BODY: Final = 1
END: Final = 2
OPAQUE: Final = 3

Event = tuple[Any, ...]  # (kind, *payload): see the module docstring

END_EVENT: Final[tuple[int]] = (END,)

DEFAULT_MAX_HEAD = 64 * 1024
MAX_CHUNK_LINE = 4 * 1024
MAX_TRAILER = 64 * 1024

_TOKEN_CHARS = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]"
# The whole head is validated by one regex, in C: per-line Python work is the proxy's cost.
_HEAD = re.compile(
    rb"(%s+) ([\x21-\x7e\x80-\xff]+) (HTTP/1\.[0-9])\r\n((?:%s+:[\t\x20-\x7e\x80-\xff]*\r\n)*)\r\n"
    % (_TOKEN_CHARS, _TOKEN_CHARS)
)
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
# The headers that frame a request, found in one pass over the lower-cased block (a CRLF
# in front of it). Three times faster than a substring search per name, and most
# requests have none of them. _HEAD has already refused CRs inside values.
_FRAMING_HEADERS = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection|expect|upgrade):([^\r]*)"
)


class FramingError(ValueError):
    """Bytes that cannot be framed as an HTTP/1.x request."""


class RequestHead:
    """A parsed request head; names and values are kept exactly as sent."""

    __slots__ = (
        "_block",
        "_headers",
        "chunked",
        "close",
        "content_length",
        "expect_continue",
        "method",
        "target",
        "upgrade",
        "version",
    )

    def __init__(  # noqa: PLR0917 - built in one place, by parse_head
        self,
        method: bytes,
        target: bytes,
        version: bytes,
        block: bytes,
        content_length: int,
        chunked: bool,
        close: bool,
        upgrade: bool,
        expect_continue: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self._block = block
        self._headers: list[tuple[bytes, bytes]] | None = None
        self.content_length = content_length
        self.chunked = chunked
        self.close = close
        self.upgrade = upgrade
        self.expect_continue = expect_continue

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """(name, value) pairs in order; parsed on first use, since the proxy never needs them."""
        if self._headers is None:
            pairs = []
            for line in self._block.split(b"\r\n")[:-1]:
                name, _, value = line.partition(b":")
                pairs.append((name, value.strip(b" \t")))
            self._headers = pairs
        return self._headers

    def get(self, name: bytes) -> bytes | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def values(self, name: bytes) -> list[bytes]:
        """Every value of header `name` (case-insensitive), in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def __repr__(self) -> str:
        return f"RequestHead({self.method!r}, {self.target!r}, {self.version!r})"


def parse_head(raw: bytes) -> RequestHead:
    """Parse a request head (request line to blank line) or raise FramingError.

    The rules follow RFC 9112 section 6: Transfer-Encoding wins over Content-Length,
    differing Content-Length values are an error, and a request with neither has no body.
    Obsolete line folding is rejected, as RFC 9112 lets a server do.
    """
    match = _HEAD.fullmatch(raw)
    if match is None:
        raise FramingError("malformed request head")
    method, target, version, block = match.groups()
    content_length = 0
    chunked = expect_continue = has_upgrade = False
    tokens: set[bytes] = set()
    found = _FRAMING_HEADERS.findall(b"\r\n" + block.lower())
    if found:
        length: int | None = None
        codings: list[bytes] = []
        for name, value in found:
            if name == b"content-length":
                for item in value.split(b","):
                    item = item.strip(b" \t")
                    if not item.isdigit() or len(item) > 18:
                        raise FramingError("bad Content-Length")
                    if length is not None and int(item) != length:
                        raise FramingError("conflicting Content-Length")
                    length = int(item)
            elif name == b"transfer-encoding":
                codings += [c.strip(b" \t") for c in value.split(b",") if c.strip(b" \t")]
            elif name == b"connection":
                tokens.update(token.strip(b" \t") for token in value.split(b","))
            elif name == b"expect":
                expect_continue = expect_continue or value.strip(b" \t") == b"100-continue"
            else:
                has_upgrade = True
        content_length = length or 0
        if codings:
            if codings[-1] != b"chunked":
                raise FramingError("Transfer-Encoding does not end in chunked")
            chunked = True
            content_length = 0
    close = b"close" in tokens or (version == b"HTTP/1.0" and b"keep-alive" not in tokens)
    upgrade = method == b"CONNECT" or (b"upgrade" in tokens and has_upgrade)
    return RequestHead(
        method, target, version, block, content_length, chunked, close, upgrade, expect_continue
    )


class LengthScanner:
    """Finds the end of a body of known length."""

    __slots__ = ("done", "remaining")

    def __init__(self, length: int) -> None:
        self.remaining = length
        self.done = length == 0

    def scan(self, data: bytes, pos: int) -> int:
        """Consume body bytes from `data[pos:]`; return the position after them."""
        take = min(self.remaining, len(data) - pos)
        self.remaining -= take
        self.done = self.remaining == 0
        return pos + take


class ChunkedScanner:
    """Finds the end of a chunked body: sizes, data, CRLFs and trailers, never decoded."""

    __slots__ = ("_line", "_state", "done", "remaining")

    _SIZE, _DATA, _DATA_CRLF, _TRAILER = range(4)

    def __init__(self) -> None:
        self._state = self._SIZE
        self._line = bytearray()
        self.remaining = 0
        self.done = False

    def _take_line(self, data: bytes, pos: int, limit: int) -> tuple[int, bytes | None]:
        """Accumulate up to a CRLF; return (new pos, the line without CRLF or None)."""
        end = data.find(b"\n", pos)
        if end < 0:
            self._line += data[pos:]
            if len(self._line) > limit:
                raise FramingError("chunk line too long")
            return len(data), None
        self._line += data[pos : end + 1]
        if len(self._line) > limit:
            raise FramingError("chunk line too long")
        line = bytes(self._line)
        self._line.clear()
        if not line.endswith(b"\r\n"):
            raise FramingError("chunk line does not end in CRLF")
        return end + 1, line[:-2]

    def scan(self, data: bytes, pos: int) -> int:
        """Consume body bytes from `data[pos:]`; return the position after them."""
        size = len(data)
        while pos < size and not self.done:
            state = self._state
            if state == self._DATA:
                take = min(self.remaining, size - pos)
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self._state = self._DATA_CRLF
            elif state == self._SIZE:
                pos, line = self._take_line(data, pos, MAX_CHUNK_LINE)
                if line is None:
                    break
                digits = line.split(b";", 1)[0].rstrip(b" \t")
                if _HEX.fullmatch(digits) is None:
                    raise FramingError("bad chunk size")
                self.remaining = int(digits, 16)
                self._state = self._DATA if self.remaining else self._TRAILER
            elif state == self._DATA_CRLF:
                pos, line = self._take_line(data, pos, 2)
                if line is None:
                    break
                if line:
                    raise FramingError("chunk data longer than its size")
                self._state = self._SIZE
            else:  # trailer section: header lines until an empty line
                pos, line = self._take_line(data, pos, MAX_TRAILER)
                if line is None:
                    break
                if not line:
                    self.done = True
        return pos


_AWAIT_HEAD: Final = 0  # RequestFramer._AWAIT_HEAD, as a module constant for the fast path


class RequestFramer:
    """Splits one connection's client bytes into requests; see the module docstring."""

    __slots__ = ("_buffer", "_max_head", "_scanner", "_state", "head", "requests")

    _AWAIT_HEAD, _IN_BODY, _AWAIT_UPGRADE, _OPAQUE = range(4)

    def __init__(self, max_head: int = DEFAULT_MAX_HEAD) -> None:
        self._max_head = max_head
        self._state = self._AWAIT_HEAD
        self._buffer = b""
        self._scanner: LengthScanner | ChunkedScanner | None = None
        self.head: RequestHead | None = None  # the request being framed, if any
        self.requests = 0  # complete requests framed so far

    @property
    def opaque(self) -> bool:
        """True once the stream can no longer be framed."""
        return self._state == self._OPAQUE

    @property
    def in_request(self) -> bool:
        """True between a request's first byte and its END."""
        return bool(self._buffer) or self._state == self._IN_BODY

    @property
    def awaiting_upgrade(self) -> bool:
        """True after an upgrade request, until `resume()` or more client bytes."""
        return self._state == self._AWAIT_UPGRADE

    def resume(self) -> None:
        """The server declined an upgrade (no 101): the connection stays HTTP."""
        if self._state == self._AWAIT_UPGRADE:
            self._state = self._AWAIT_HEAD

    def give_up(self, reason: str) -> tuple[int, str]:
        """Stop framing for good (e.g. after a 101 response)."""
        self._state = self._OPAQUE
        self._buffer = b""
        self.head = None
        return (OPAQUE, reason)

    def feed(self, data: bytes) -> list[Event]:
        """Frame `data`, the next bytes of the stream; return the events it completes."""
        events: list[Event] = []
        pos = 0
        size = len(data)
        try:
            if self._state == _AWAIT_HEAD and not self._buffer and data[:1] != b"\r":
                # The usual keep-alive read: it starts with a whole head. Same events
                # as the loop below, with less bookkeeping.
                end = data.find(b"\r\n\r\n") + 4
                if 4 <= end <= self._max_head:
                    raw = data if end == size else data[:end]
                    head = parse_head(raw)
                    if not (head.chunked or head.upgrade):
                        length = head.content_length
                        if end + length == size:
                            events.append((HEAD, raw, head))
                            if length:
                                events.append((BODY, data[end:]))
                            events.append(END_EVENT)
                            self.requests += 1
                            return events
                    pos = self._start_body(head, raw, events, end)
            while pos < size:
                state = self._state
                if state == self._IN_BODY:
                    scanner = self._scanner
                    assert scanner is not None
                    end = scanner.scan(data, pos)
                    if end > pos:
                        events.append((BODY, data[pos:end]))
                        pos = end
                    if scanner.done:
                        self._finish(events)
                elif state == self._AWAIT_HEAD:
                    pos = self._feed_head(data, pos, events)
                elif state == self._AWAIT_UPGRADE:
                    # Client bytes before the server's answer: a tunnel, not HTTP.
                    events.append(self.give_up("upgrade"))
                    break
                else:
                    break
        except FramingError as exc:
            events.append(self.give_up(str(exc)))
        return events

    def _feed_head(self, data: bytes, pos: int, events: list[Event]) -> int:
        if self._buffer:
            # A head split across reads: the rare path, so a copy is fine.
            joined = self._buffer + data[pos:]
            base = len(self._buffer)
        else:
            # Tolerate blank lines between requests (RFC 9112 section 2.2).
            while data.startswith(b"\r\n", pos):
                pos += 2
            if pos >= len(data):
                return pos
            if data[pos] == 13 and pos == len(data) - 1:  # a lone CR: maybe a blank line
                self._buffer = b"\r"
                return len(data)
            joined = data
            base = -pos
        end = joined.find(b"\r\n\r\n", 0 if base > 0 else pos)
        if end < 0:
            if len(joined) - (0 if base > 0 else pos) > self._max_head:
                raise FramingError("request head too large")
            self._buffer = joined if base > 0 else data[pos:]
            return len(data)
        if base > 0:
            start = len(joined) - len(joined.lstrip(b"\r\n"))
            raw = joined[start : end + 4]
            consumed = end + 4 - base
            self._buffer = b""
            if not raw.strip(b"\r\n"):
                return pos + consumed
        else:
            raw = data[pos : end + 4]
            consumed = end + 4 - pos
        if len(raw) > self._max_head:
            raise FramingError("request head too large")
        return self._start_body(parse_head(raw), raw, events, pos + consumed)

    def _start_body(self, head: RequestHead, raw: bytes, events: list[Event], pos: int) -> int:
        """Emit HEAD and enter the state its body needs; return `pos`, just past the head."""
        self.head = head
        events.append((HEAD, raw, head))
        if head.chunked:
            self._scanner = ChunkedScanner()
            self._state = self._IN_BODY
        elif head.content_length:
            self._scanner = LengthScanner(head.content_length)
            self._state = self._IN_BODY
        else:
            self._finish(events)
        return pos

    def _finish(self, events: list[Event]) -> None:
        events.append(END_EVENT)
        self.requests += 1
        head = self.head
        self._scanner = None
        self.head = None
        if head is not None and head.upgrade:
            self._state = self._OPAQUE if head.method == b"CONNECT" else self._AWAIT_UPGRADE
            if head.method == b"CONNECT":
                events.append((OPAQUE, "CONNECT"))
        else:
            self._state = self._AWAIT_HEAD
