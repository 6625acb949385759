"""Where a message body ends: a known length, or chunks (RFC 9112 sections 6 and 7.1).

The scanners never copy or decode a body; they only count through it, so the relay
can pass the bytes on unchanged and know where the message ends.
"""

from __future__ import annotations

import re

from traffic_duplicator.http1.head import TOKEN, field_problem
from traffic_duplicator.http1.reasons import FramingError

MAX_CHUNK_LINE = 4 * 1024
MAX_TRAILER = 64 * 1024  # per trailer line; lines are checked, never kept

_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
# chunk-size [ chunk-ext ], chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS token / quoted ] ).
# Nothing else: no whitespace after the size, no bare CR (RFC 9112 section 7.1.1). Sizes
# of 2**64 or more are refused (servers overflow differently); leading zeros are not.
_STRICT_SIZE_LINE = re.compile(
    rb"0*([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*%s(?:[ \t]*=[ \t]*(?:%s|%s))?)*"
    % (TOKEN, TOKEN, _QUOTED)
)
# What a client (h11, browsers) accepts in a response: any extension, trailing whitespace.
_LENIENT_SIZE_LINE = re.compile(rb"0*([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?")


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
    """Finds the end of a chunked body: sizes, data, CRLFs and trailers, never decoded.

    `strict` (requests) refuses anything a server may read another way: extensions
    outside the grammar, whitespace after the size, trailer lines that are not fields.
    Responses are read as clients read them (lenient), since only their end matters.
    """

    __slots__ = ("_line", "_size_line", "_state", "_strict", "done", "remaining")

    _SIZE, _DATA, _DATA_CRLF, _TRAILER = range(4)

    def __init__(self, strict: bool = True) -> None:
        self._state = self._SIZE
        self._line = bytearray()
        self._strict = strict
        self._size_line = _STRICT_SIZE_LINE if strict else _LENIENT_SIZE_LINE
        self.remaining = 0
        self.done = False

    def _take_line(self, data: bytes, pos: int, limit: int) -> tuple[int, bytes | None]:
        """Accumulate up to a CRLF; return (new pos, the line without CRLF or None)."""
        end = data.find(b"\n", pos)
        if end < 0:
            self._line += data[pos:]
            if len(self._line) > limit:
                raise FramingError("chunk_syntax", "chunk line too long")
            return len(data), None
        self._line += data[pos : end + 1]
        if len(self._line) > limit:
            raise FramingError("chunk_syntax", "chunk line too long")
        line = bytes(self._line)
        self._line.clear()
        if not line.endswith(b"\r\n"):
            raise FramingError("chunk_syntax", "chunk line does not end in CRLF")
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
                self._start_chunk(line)
            elif state == self._DATA_CRLF:
                pos, line = self._take_line(data, pos, 2)
                if line is None:
                    break
                if line:
                    raise FramingError("chunk_syntax", "chunk data longer than its size")
                self._state = self._SIZE
            else:  # trailer section: field lines until an empty line
                pos, line = self._take_line(data, pos, MAX_TRAILER)
                if line is None:
                    break
                if not line:
                    self.done = True
                elif self._strict:
                    self._check_trailer(line)
        return pos

    def _start_chunk(self, line: bytes) -> None:
        match = self._size_line.fullmatch(line)
        if match is None:
            raise FramingError("chunk_syntax", "bad chunk size or extension")
        self.remaining = int(match.group(1), 16)
        self._state = self._DATA if self.remaining else self._TRAILER

    @staticmethod
    def _check_trailer(line: bytes) -> None:
        problem = field_problem(line)
        if problem is not None:
            raise FramingError(problem, f"trailer field: {problem}")
