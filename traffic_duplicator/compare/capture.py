"""Recording responses from a byte stream, and carrying them in GoReplay's type `2` framing.

`ResponseRecorder` reads one connection's response bytes (what the app sends the client, or
what a destination sends the replayer) and returns a `CapturedResponse` per complete
response, in order. It stores at most the head and `body_limit` body bytes of the response
in progress; past the limit it only hashes. Where a response ends is the proxy's tracker's
and the replayer's rule, `http1.response.response_end` (RFC 9112 section 6.3): no body for
a HEAD request, 1xx, 204 and 304; chunked wins over Content-Length; otherwise the body
runs until the connection closes. A `101` ends recording: the connection is a tunnel.

`encode_response` frames a record as GoReplay's `--input-raw-track-response` does: header
line `2 <id> <unix-ns> <latency-ns>`, then the raw response (gor's protocol.go and its
middleware documentation). A body that was cut is sent cut, as gor does past its copy
buffer, and the message says so in one extra header, `X-Traffic-Duplicator-Body`, carrying
the whole body's length and SHA-256; `decode_response` reads it back and removes it.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from enum import Enum

from traffic_duplicator import gorproto
from traffic_duplicator.compare.model import DEFAULT_BODY_LIMIT, CapturedResponse, parse_head
from traffic_duplicator.http1.response import (
    CHUNKED,
    INTERIM,
    LENGTH,
    TUNNEL,
    UNTIL_CLOSE,
    response_end,
)

MAX_RESPONSE_HEAD = 64 * 1024
MAX_CHUNK_LINE = 4 * 1024
# Requests whose responses have not started; a client pipelining deeper loses records.
MAX_EXPECTED = 256
BODY_MARKER = "X-Traffic-Duplicator-Body"
_MARKER_VALUE = re.compile(r"length=(\d{1,18}); sha256=([0-9a-f]{64})")
_MARKER_LINE = re.compile(rb"\r\nX-Traffic-Duplicator-Body:[^\r]*", re.IGNORECASE)
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class _Mode(Enum):
    HEAD = "head"  # waiting for a status line and headers
    LENGTH = "length"  # a body of known length
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until-close"
    STOPPED = "stopped"  # a tunnel, or bytes that are not HTTP: nothing more is recorded


class BodySink:
    """Keeps the first `limit` body bytes; past them, hashes the whole body instead."""

    __slots__ = ("_hash", "_kept", "_limit", "length")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        # A body in one piece (the usual case) is kept as it came; a second piece makes
        # it a bytearray, which grows in place.
        self._kept: bytes | bytearray = b""
        self._hash: hashlib._Hash | None = None
        self.length = 0

    def add(self, data: bytes) -> None:
        self.length += len(data)
        if self._hash is not None:
            self._hash.update(data)
            return
        kept = self._kept
        if not kept and len(data) <= self._limit:
            self._kept = data
            return
        if type(kept) is bytes:
            kept = self._kept = bytearray(kept)
        room = self._limit - len(kept)
        if len(data) <= room:
            kept += data
            return
        kept += data[:room]
        # The body outgrew the cap: from now on only its digest can be compared.
        self._hash = hashlib.sha256(self._kept)
        self._hash.update(data[room:])

    def record(
        self, status: int, head: bytes, chunked: bool, parse: bool = True
    ) -> CapturedResponse:
        """The response; `parse=False` leaves its `headers` empty (only `head` is kept)."""
        headers = parse_head(head)[1] if parse else ()
        digest = self._hash.hexdigest() if self._hash is not None else ""
        return CapturedResponse(
            status, headers, bytes(self._kept), self.length, head, digest, chunked
        )


class Dechunker:
    """Removes chunked framing (RFC 9112 section 7.1), handing chunk data to a sink."""

    __slots__ = ("_line", "_remaining", "_state", "done")

    _SIZE, _DATA, _DATA_END, _TRAILER = range(4)

    def __init__(self) -> None:
        self._state = self._SIZE
        self._line = b""
        self._remaining = 0
        self.done = False

    def feed(self, data: bytes, pos: int, sink: BodySink) -> int:
        """Consume `data[pos:]` up to the end of the body; return the position reached."""
        while pos < len(data) and not self.done:
            if self._state == self._DATA:
                piece = data[pos : pos + self._remaining]
                sink.add(piece)
                pos += len(piece)
                self._remaining -= len(piece)
                if not self._remaining:
                    self._state = self._DATA_END
                continue
            line, pos = self._line_from(data, pos)
            if line is not None:
                self._on_line(line)
        return pos

    def _line_from(self, data: bytes, pos: int) -> tuple[bytes | None, int]:
        end = data.find(b"\n", pos)
        if end < 0:
            self._line += data[pos:]
            if len(self._line) > MAX_CHUNK_LINE:
                raise ValueError("chunk line too long")
            return None, len(data)
        line = (self._line + data[pos:end]).rstrip(b"\r")
        self._line = b""
        return line, end + 1

    def _on_line(self, line: bytes) -> None:
        if self._state == self._SIZE:
            digits = line.split(b";", 1)[0].strip(b" \t")
            if _CHUNK_SIZE.fullmatch(digits) is None:
                raise ValueError("bad chunk size")
            self._remaining = int(digits, 16)
            self._state = self._DATA if self._remaining else self._TRAILER
        elif self._state == self._DATA_END:
            if line:
                raise ValueError("chunk longer than its size")
            self._state = self._SIZE
        elif not line:  # the blank line that ends the trailer section
            self.done = True


class ResponseRecorder:
    """Turns one connection's response bytes into `CapturedResponse`s, in request order.

    Call `expect(head_request)` for each request sent on the connection, in order, so that
    a response to HEAD is known to have no body. Bytes that cannot be read as HTTP/1.x
    stop the recorder (`stopped`); the caller's relay is unaffected. With `headers=False`
    the records keep the raw `head` and leave `headers` empty: enough to forward them, as
    the tee proxy does, for a fraction of the cost.
    """

    def __init__(self, body_limit: int = DEFAULT_BODY_LIMIT, headers: bool = True) -> None:
        self._body_limit = body_limit
        self._headers = headers
        self._mode = _Mode.HEAD
        self._buffer = b""
        self._head = b""
        self._status = 0
        self._remaining = 0
        self._chunks: Dechunker | None = None
        self._sink = BodySink(body_limit)
        self._expected: deque[bool] = deque()
        self.overflowed = 0  # expectations forgotten because the client pipelined too deep

    @property
    def stopped(self) -> bool:
        return self._mode is _Mode.STOPPED

    def expect(self, head_request: bool = False) -> None:
        if len(self._expected) >= MAX_EXPECTED:
            self.overflowed += 1
            return
        self._expected.append(head_request)

    def feed(self, data: bytes) -> list[CapturedResponse]:
        """Record `data`; return the responses it completes."""
        done: list[CapturedResponse] = []
        try:
            # The usual read starts with a head (often a whole response): no dispatch.
            pos = self._read_head(data, 0, done) if self._mode is _Mode.HEAD else 0
            while pos < len(data) and self._mode is not _Mode.STOPPED:
                pos = self._step(data, pos, done)
        except ValueError:
            self._stop()
        return done

    def eof(self) -> list[CapturedResponse]:
        """The connection closed: completes a body that runs until close."""
        if self._mode is _Mode.UNTIL_CLOSE:
            return [self._finish()]
        return []

    def _step(self, data: bytes, pos: int, done: list[CapturedResponse]) -> int:
        mode = self._mode
        if mode is _Mode.HEAD:
            return self._read_head(data, pos, done)
        if mode is _Mode.LENGTH:
            piece = data[pos : pos + self._remaining]
            self._sink.add(piece)
            self._remaining -= len(piece)
            if not self._remaining:
                done.append(self._finish())
            return pos + len(piece)
        if mode is _Mode.CHUNKED:
            assert self._chunks is not None
            pos = self._chunks.feed(data, pos, self._sink)
            if self._chunks.done:
                done.append(self._finish())
            return pos
        self._sink.add(data[pos:])  # UNTIL_CLOSE
        return len(data)

    def _read_head(self, data: bytes, pos: int, done: list[CapturedResponse]) -> int:
        if self._buffer:
            return self._read_split_head(data, pos, done)
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            if len(data) - pos > MAX_RESPONSE_HEAD:
                raise ValueError("response head too large")
            self._buffer = data[pos:]
            return len(data)
        self._begin(data[pos : end + 4], done)
        pos = end + 4
        remaining = self._remaining
        if self._mode is _Mode.LENGTH and len(data) - pos >= remaining:
            # The usual case: the whole body follows its head in the same read.
            self._sink.add(data[pos : pos + remaining])
            self._remaining = 0
            done.append(self._finish())
            return pos + remaining
        return pos

    def _read_split_head(self, data: bytes, pos: int, done: list[CapturedResponse]) -> int:
        """A head that began in an earlier read."""
        joined = self._buffer + data[pos:]
        end = joined.find(b"\r\n\r\n")
        if end < 0:
            if len(joined) > MAX_RESPONSE_HEAD:
                raise ValueError("response head too large")
            self._buffer = joined
            return len(data)
        consumed = end + 4 - len(self._buffer)
        self._buffer = b""
        self._begin(joined[: end + 4], done)
        return pos + consumed

    def _begin(self, head: bytes, done: list[CapturedResponse]) -> None:
        expected = self._expected
        head_request = expected[0] if expected else False
        # The tracker's and the replayer's rule (RFC 9112 section 6.3); FramingError is
        # a ValueError: the recorder stops.
        status, follows, length = response_end(head, b"HEAD" if head_request else b"GET")
        if follows == INTERIM:
            return  # 100 Continue, 103 Early Hints: the final response follows
        if follows == TUNNEL:
            self._stop()  # 101 Switching Protocols
            return
        if expected:
            expected.popleft()
        self._head, self._status = head, status
        self._sink = BodySink(self._body_limit)
        if follows == LENGTH:
            self._remaining = length
            self._mode = _Mode.LENGTH
        elif follows == CHUNKED:
            self._chunks = Dechunker()
            self._mode = _Mode.CHUNKED
        elif follows == UNTIL_CLOSE:
            self._mode = _Mode.UNTIL_CLOSE
        else:  # NO_BODY
            done.append(self._finish())

    def _finish(self) -> CapturedResponse:
        record = self._sink.record(
            self._status, self._head, self._chunks is not None, self._headers
        )
        self._mode = _Mode.HEAD
        self._chunks = None
        self._head = b""
        return record

    def _stop(self) -> None:
        self._mode = _Mode.STOPPED
        self._buffer = b""
        self._chunks = None
        self._expected.clear()


def encode_response(
    message_id: bytes,
    response: CapturedResponse,
    latency_ns: int,
    timestamp_ns: int | None = None,
    kind: bytes = gorproto.RESPONSE,
) -> bytes:
    """A GoReplay type `2` message for `response` (see the module docstring); with
    `kind=gorproto.REPLAYED_RESPONSE`, the type `3` a replayer records for a destination's
    response (gor's `--output-http-track-response`)."""
    head = response.head
    if response.truncated:
        marker = f"{BODY_MARKER}: length={response.body_length}; sha256={response.digest}\r\n"
        head = head[:-2] + marker.encode("ascii") + b"\r\n"
    body = response.body
    if response.chunked:
        last = b"0\r\n\r\n"
        body = b"%x\r\n%s\r\n%s" % (len(body), body, last) if body else last
    return gorproto.encode(head + body, kind, message_id, timestamp_ns, latency_ns)


def decode_response(
    message: gorproto.Message, body_limit: int = DEFAULT_BODY_LIMIT
) -> CapturedResponse:
    """The response in a type `2` or `3` message; raises ValueError on a payload that is not one.

    The message's latency (nanoseconds) becomes the record's `latency` in seconds.
    """
    payload = message.payload
    end = payload.find(b"\r\n\r\n")
    if end < 0:
        raise ValueError("response message has no complete head")
    head, rest = payload[: end + 4], payload[end + 4 :]
    status, headers = parse_head(head)
    length = digest = None
    kept = []
    for name, value in headers:
        match = _MARKER_VALUE.fullmatch(value) if name.lower() == BODY_MARKER.lower() else None
        if match is not None:
            length, digest = int(match.group(1)), match.group(2)
        else:
            kept.append((name, value))
    chunked = bool(re.search(rb"\r\ntransfer-encoding:[^\r]*chunked", head.lower()))
    head = _MARKER_LINE.sub(b"", head)
    sink = BodySink(body_limit)
    if chunked:
        try:
            Dechunker().feed(rest, 0, sink)
        except ValueError:
            pass  # a cut chunk: keep what came before it
    else:
        sink.add(rest)
    record = sink.record(status, head, chunked, parse=False)  # `kept` are its headers
    latency = message.latency / 1e9 if message.latency is not None else None
    return CapturedResponse(
        status,
        tuple(kept),
        record.body,
        length if length is not None else record.body_length,
        head,
        digest or record.body_digest,
        chunked,
        latency,
    )
