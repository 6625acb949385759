"""GoReplay's message framing, shared by its TCP input, its file format and our gor:// targets.

A message is a header line `<type> <id> <unix-ns>[ <latency>]\n`, the raw payload,
then the separator `\n🐵🙈🙉\n` (GoReplay's protocol.go). The payload is never escaped,
so a payload that contains the separator cannot be framed; GoReplay has the same limit.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

SEPARATOR = "\n🐵🙈🙉\n".encode()
REQUEST = b"1"
RESPONSE = b"2"
REPLAYED_RESPONSE = b"3"
ID_HEX_CHARS = 24


def new_id() -> bytes:
    """A random 24-hex-digit message id, the length GoReplay uses."""
    return os.urandom(ID_HEX_CHARS // 2).hex().encode()


def encode(
    payload: bytes,
    kind: bytes = REQUEST,
    message_id: bytes | None = None,
    timestamp_ns: int | None = None,
    latency: int | None = 0,
) -> bytes:
    """One framed message: header line, payload, separator."""
    ident = message_id if message_id is not None else new_id()
    stamp = timestamp_ns if timestamp_ns is not None else time.time_ns()
    header = b"%s %s %d" % (kind, ident, stamp)
    if latency is not None:
        header += b" %d" % latency
    return b"".join((header, b"\n", payload, SEPARATOR))


@dataclass(frozen=True)
class Message:
    """A decoded GoReplay message."""

    kind: bytes
    message_id: bytes
    timestamp_ns: int
    latency: int | None
    payload: bytes


class MalformedMessage(ValueError):
    """A framed message whose header line GoReplay would not understand."""


def decode(frame: bytes) -> Message:
    """Decode one message without its trailing separator."""
    header, newline, payload = frame.partition(b"\n")
    if not newline:
        raise MalformedMessage("message has no header line")
    parts = header.split(b" ")
    if len(parts) not in (3, 4) or parts[0] not in (REQUEST, RESPONSE, REPLAYED_RESPONSE):
        raise MalformedMessage(f"bad message header {header[:80]!r}")
    try:
        stamp = int(parts[2])
        latency = int(parts[3]) if len(parts) == 4 and parts[3] else None
    except ValueError:
        raise MalformedMessage(f"bad message header {header[:80]!r}") from None
    return Message(parts[0], parts[1], stamp, latency, payload)


class StreamSplitter:
    """Splits a byte stream into frames at the separator, holding at most `max_frame` bytes."""

    def __init__(self, max_frame: int = 16 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame
        self._discarding = False
        self.oversized = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Frames completed by `data`; an oversized frame is skipped and counted."""
        self._buffer += data
        frames: list[bytes] = []
        start = 0
        while True:
            end = self._buffer.find(SEPARATOR, start)
            if end < 0:
                break
            if self._discarding:
                self._discarding = False
            else:
                frames.append(bytes(self._buffer[start:end]))
            start = end + len(SEPARATOR)
        del self._buffer[:start]
        if len(self._buffer) > self._max_frame:
            # Keep the tail that could be the start of a separator; drop the rest.
            keep = len(SEPARATOR) - 1
            del self._buffer[:-keep]
            if not self._discarding:
                self.oversized += 1
            self._discarding = True
        return frames

    def finish(self) -> bytes | None:
        """The unterminated last frame at end of stream, as GoReplay's scanner returns it."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        if self._discarding or not rest:
            return None
        return rest
