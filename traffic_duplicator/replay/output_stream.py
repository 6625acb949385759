"""`--output-file`, `--output-stdout` and `--output-null`: requests in GoReplay's framing.

Each request is written as gor writes its files: a header line `1 <id> <unix-ns> 0`,
the raw request, then the `\\n🐵🙈🙉\\n` separator, so gor or this replayer can replay
the capture with `--input-file`. With comparison on, production's responses (type `2`) and
each destination's (type `3`) are written too, with their request's id, as gor's
`--output-http-track-response` files hold them. Writes are buffered and flushed on a
timer; the buffer is bounded, and a reader that does not keep up (a stuck stdout pipe)
costs dropped lines, never a blocked event loop.
"""

from __future__ import annotations

import asyncio
import os
import sys

from traffic_duplicator import gorproto
from traffic_duplicator.errors import UserError
from traffic_duplicator.logs import EventLog
from traffic_duplicator.replay.request import Request
from traffic_duplicator.replay.stats import OutputStats

MAX_BUFFER = 8 * 1024 * 1024
STDOUT_FLUSH = 0.05


class OutputFileError(UserError):
    """An --output-file path that cannot be opened."""


class StreamOutput:
    """Appends framed requests to a file descriptor."""

    def __init__(self, name: str, fd: int, flush_interval: float, owns_fd: bool) -> None:
        self.name = name
        self.stats = OutputStats()
        self._fd = fd
        self._owns_fd = owns_fd
        self._buffer = bytearray()
        self._interval = flush_interval
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    @classmethod
    def file(cls, path: str, flush_interval: float) -> StreamOutput:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise OutputFileError(
                f"--output-file {path}: cannot open it ({exc.strerror}); "
                "check that the directory exists and is writable"
            ) from None
        return cls(f"file:{path}", fd, flush_interval, owns_fd=True)

    @classmethod
    def stdout(cls) -> StreamOutput:
        fd = sys.stdout.fileno()
        # A pipe nobody reads must not stall replay: write what fits, drop the rest.
        os.set_blocking(fd, False)
        return cls("stdout", fd, STDOUT_FLUSH, owns_fd=False)

    def offer(self, request: Request) -> None:
        if self._closed:
            self.stats.dropped += 1
            return
        frame = gorproto.encode(
            request.data,
            gorproto.REQUEST,
            message_id=request.message_id,
            timestamp_ns=request.received_ns,
        )
        self.write_frame(frame)

    def write_frame(self, frame: bytes) -> None:
        """Append one framed message (a request, or with comparison on a response)."""
        if self._closed or len(self._buffer) + len(frame) > MAX_BUFFER:
            self.stats.dropped += 1
            return
        self._buffer += frame
        self.stats.sent += 1
        if self._timer is None:
            self._timer = self._loop.call_later(self._interval, self.flush)

    def flush(self) -> None:
        self._timer = None
        while self._buffer:
            try:
                written = os.write(self._fd, self._buffer)
            except BlockingIOError:
                break
            except OSError as exc:
                self.stats.errors += 1
                self._buffer.clear()
                EventLog(None).event(at="error", output=self.name, error=exc.strerror)
                break
            del self._buffer[:written]
        if self._buffer and not self._closed:
            self._timer = self._loop.call_later(self._interval, self.flush)

    @property
    def pending(self) -> int:
        return 1 if self._buffer else 0

    async def drain(self) -> None:
        self.flush()

    def close(self) -> int:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._owns_fd:
            os.set_blocking(self._fd, True)  # at exit, wait for the reader rather than drop
        self.flush()
        self._closed = True
        if self._owns_fd:
            os.close(self._fd)
        return 0


class NullOutput:
    """`--output-null`: counts and drops."""

    name = "null"

    def __init__(self) -> None:
        self.stats = OutputStats()
        self.pending = 0

    def offer(self, request: Request) -> None:
        self.stats.sent += 1

    async def drain(self) -> None:
        return None

    def close(self) -> int:
        return 0
