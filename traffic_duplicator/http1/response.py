"""Where an HTTP/1.x response ends: one rule, for the proxy's tracker and the replayer's reader.

`response_end(head, method)` applies RFC 9112 section 6.3 to a response head, in its order:

1. a response to HEAD, and any 1xx, 204 or 304, ends with its head; a 1xx other than 101
   is interim, and the final response still follows;
2. a 2xx to CONNECT, like a 101, ends with its head and turns the connection into a tunnel;
3. Transfer-Encoding wins over Content-Length: chunked when it is the final coding, else
   the body runs until the server closes (item 4). In an HTTP/1.0 response the framing
   is faulty (section 6.1), so the end is the close as well;
4. Content-Length, where a list or repeat of one same value counts as that value and
   differing or malformed values are an error (item 5);
5. otherwise the body runs until the server closes (item 8).
"""

from __future__ import annotations

import re
from typing import Final

from traffic_duplicator.http1.head import MAX_CONTENT_LENGTH_DIGITS
from traffic_duplicator.http1.reasons import FramingError

# What follows a response head. Plain ints, not an IntEnum: they are compared on every
# response on the proxy's hot path, and CPython's fast comparisons are for exact ints.
INTERIM: Final = 0  # a 1xx other than 101: no body, and the final response still follows
NO_BODY: Final = 1  # the response ends with its head
TUNNEL: Final = 2  # ends with its head; the connection then stops being HTTP
LENGTH: Final = 3  # a body of exactly `length` (> 0) bytes
CHUNKED: Final = 4  # a chunked body
UNTIL_CLOSE: Final = 5  # the body runs until the server closes the connection

MAX_RESPONSE_HEAD = 64 * 1024

# HTTP-version SP 3DIGIT SP: status codes are 100-599 with three digits (RFC 9110 section
# 15); a missing reason phrase often loses its space too, so a CR may follow.
_STATUS_LINE = re.compile(rb"HTTP/1\.[0-9] ([1-9][0-9][0-9])[ \r]")


def response_end(head: bytes, method: bytes = b"GET") -> tuple[int, int, int]:
    """(status, what follows the head, body length) for one response head.

    `head` runs from the status line to the blank line, CRLF CRLF included; `method` is
    the request's (only HEAD and CONNECT change the answer). What follows is one of
    INTERIM, NO_BODY, TUNNEL, LENGTH, CHUNKED, UNTIL_CLOSE; the length is 0 unless LENGTH.
    Raises FramingError (reason "status_line" or "cl_invalid").
    """
    match = _STATUS_LINE.match(head)
    if match is None:
        raise FramingError("status_line")
    status = int(match.group(1))
    if status < 200:
        return status, TUNNEL if status == 101 else INTERIM, 0
    if method == b"HEAD" or status in (204, 304):
        return status, NO_BODY, 0
    if method == b"CONNECT" and status < 300:
        return status, TUNNEL, 0
    # Field names are case-insensitive: search a lower-cased copy that keeps the CRLF
    # ending the last field, so every field line starts and ends with one.
    lowered = head[:-2].lower()
    if lowered.find(b"\r\ntransfer-encoding:") >= 0:
        last = field_values(lowered, b"transfer-encoding").rsplit(b",", 1)[-1]
        chunked = last.strip(b" \t") == b"chunked" and not head.startswith(b"HTTP/1.0")
        return status, CHUNKED if chunked else UNTIL_CLOSE, 0
    found = lowered.find(b"\r\ncontent-length:")
    if found < 0:
        return status, UNTIL_CLOSE, 0
    line_end = lowered.find(b"\r\n", found + 17)
    value = lowered[found + 17 : line_end].strip(b" \t")
    if not value.isdigit() or lowered.find(b"\r\ncontent-length:", line_end) >= 0:
        value = _one_length(field_values(lowered, b"content-length"))
    if len(value.lstrip(b"0")) > MAX_CONTENT_LENGTH_DIGITS:
        raise FramingError("cl_invalid", "Content-Length too large")
    length = int(value)
    return status, LENGTH if length else NO_BODY, length


def _one_length(values: bytes) -> bytes:
    """The one value of a Content-Length list such as `12, 12` (RFC 9112 6.3 item 5)."""
    items = [item.strip(b" \t") for item in values.split(b",")]
    if not items[0].isdigit() or any(item != items[0] for item in items):
        raise FramingError("cl_invalid")
    return items[0]


def field_values(lowered: bytes, name: bytes) -> bytes:
    """Every value of field `name` in a lower-cased head, trimmed and joined by commas.

    `lowered` must start each field line with CRLF and end the last one with CRLF.
    """
    needle = b"\r\n" + name + b":"
    values = []
    pos = lowered.find(needle)
    while pos >= 0:
        start = pos + len(needle)
        end = lowered.find(b"\r\n", start)
        values.append(lowered[start:end].strip(b" \t"))
        pos = lowered.find(needle, end)
    return b",".join(values)
