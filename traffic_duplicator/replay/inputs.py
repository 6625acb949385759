"""Inputs: `--input-http` (answer 200 at once), `--input-tcp` (gor framing), `--input-file`.

Every input hands complete requests to one `submit` callback and never waits for the
outputs: reading never pauses, so the sender (the tee proxy) is never slowed. Requests
too big to mirror are answered and counted, not buffered; malformed ones get a 400.
"""

from __future__ import annotations

import asyncio
import glob
import time
from collections.abc import Callable
from typing import cast

from traffic_duplicator import gorproto
from traffic_duplicator.errors import UserError
from traffic_duplicator.http1 import BODY, END, HEAD, OPAQUE, RequestFramer, RequestHead
from traffic_duplicator.logs import EventLog
from traffic_duplicator.replay.config import InputConfig
from traffic_duplicator.replay.request import Request
from traffic_duplicator.replay.stats import InputStats

Submit = Callable[[Request], None]

OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
OK_CLOSE_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"
BAD_REQUEST_RESPONSE = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
# A client that sends but never reads our answers is cut off before they pile up.
MAX_UNREAD_RESPONSES = 1024 * 1024
# The tee proxy holds a few connections; thousands mean something is wrong.
MAX_CONNECTIONS = 1024


class HttpInputProtocol(asyncio.Protocol):
    """One client connection on `--input-http`: frame requests, answer 200, submit."""

    def __init__(self, submit: Submit, stats: InputStats, max_request: int, conns: set) -> None:  # type: ignore[type-arg]
        self._submit = submit
        self._stats = stats
        self._max_request = max_request
        self._framer = RequestFramer()
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._method = b""
        self._body: list[bytes] = []
        self._size = 0
        self._close_after = False
        self._connect = False
        self._conns = conns

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        if len(self._conns) >= MAX_CONNECTIONS:
            self._transport.abort()
            return
        self._stats.connections += 1
        self._conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._conns.discard(self)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        replies: list[bytes] = []
        for event in self._framer.feed(data):
            kind = event[0]
            if kind is BODY:
                self._size += len(event[1])
                if self._size <= self._max_request:
                    self._body.append(event[1])
            elif kind is HEAD:
                self._on_head(event[1], event[2], replies)
            elif kind is END:
                if self._on_end(replies):
                    break
            elif kind is OPAQUE:
                self._refuse(replies)
                break
        if replies:
            transport.write(b"".join(replies) if len(replies) > 1 else replies[0])
        if self._close_after:
            transport.close()
        elif transport.get_write_buffer_size() > MAX_UNREAD_RESPONSES:
            transport.abort()

    def _on_head(self, raw: bytes, head: RequestHead, replies: list[bytes]) -> None:
        self._head = raw
        self._method = head.method
        self._body = []
        self._size = len(raw)
        self._close_after = head.close
        self._connect = head.method == b"CONNECT"
        if head.expect_continue:
            replies.append(CONTINUE_RESPONSE)

    def _on_end(self, replies: list[bytes]) -> bool:
        """A request is complete: answer it. True when the connection ends with it."""
        if self._connect:
            # A tunnel cannot be mirrored; gor refuses CONNECT too.
            self._refuse(replies)
            return True
        self._finish_request()
        if self._close_after:
            replies.append(OK_CLOSE_RESPONSE)
            return True
        replies.append(OK_RESPONSE)
        if self._framer.awaiting_upgrade:
            self._framer.resume()  # we answered 200, not 101: still HTTP
        return False

    def _refuse(self, replies: list[bytes]) -> None:
        self._stats.malformed += 1
        replies.append(BAD_REQUEST_RESPONSE)
        self._close_after = True

    def _finish_request(self) -> None:
        stats = self._stats
        stats.accepted += 1
        if self._size > self._max_request:
            stats.too_large += 1
            return
        body = b"".join(self._body) if self._body else b""
        self._body = []
        self._submit(
            Request(self._head, body, self._method, time.time_ns(), close=self._close_after)
        )

    def eof_received(self) -> bool | None:
        return None


def request_from_payload(
    payload: bytes, received_ns: int, message_id: bytes | None
) -> Request | None:
    """The first complete request in a gor payload, or None if it does not frame."""
    framer = RequestFramer(max_head=len(payload) + 4)
    head_raw = b""
    method = b""
    close = False
    body: list[bytes] = []
    for event in framer.feed(payload):
        kind = event[0]
        if kind is HEAD:
            head_raw, method, close = event[1], event[2].method, event[2].close
        elif kind is BODY:
            body.append(event[1])
        elif kind is END:
            return Request(head_raw, b"".join(body), method, received_ns, message_id, close)
        elif kind is OPAQUE:
            return None
    return None


class Intake:
    """Where GoReplay messages go, from `--input-tcp` or `--input-file`.

    Requests (type `1`) are submitted. With comparison on, production's responses (type
    `2`, what the tee proxy's `--compare` and gor's `--input-raw-track-response` send) go to
    `responses`; without it, and always for type `3` (a destination's response recorded in
    an earlier capture), they are skipped: the replayer replays requests only.
    """

    __slots__ = ("responses", "stats", "submit")

    def __init__(
        self,
        submit: Submit,
        stats: InputStats,
        responses: Callable[[gorproto.Message], None] | None = None,
    ) -> None:
        self.submit = submit
        self.stats = stats
        self.responses = responses

    def frame(self, frame: bytes) -> None:
        """Decode one gor frame and hand it on; junk is counted as malformed."""
        stats = self.stats
        try:
            message = gorproto.decode(frame)
        except gorproto.MalformedMessage:
            stats.malformed += 1
            return
        if message.kind != gorproto.REQUEST:
            if message.kind == gorproto.RESPONSE and self.responses is not None:
                self.responses(message)
            return
        stats.accepted += 1
        request = request_from_payload(message.payload, message.timestamp_ns, message.message_id)
        if request is None:
            stats.malformed += 1
            return
        self.submit(request)


class TcpInputProtocol(asyncio.Protocol):
    """One connection on `--input-tcp`: GoReplay frames, handed to the intake."""

    def __init__(self, intake: Intake, max_request: int, conns: set) -> None:  # type: ignore[type-arg]
        self._intake = intake
        self._stats = intake.stats
        self._splitter = gorproto.StreamSplitter(max_frame=max_request + 256)
        self._transport: asyncio.BaseTransport | None = None
        self._conns = conns
        self._oversized = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        if len(self._conns) >= MAX_CONNECTIONS:
            transport.close()
            return
        self._stats.connections += 1
        self._conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._conns.discard(self)
        rest = self._splitter.finish()
        if rest:
            self._intake.frame(rest)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        for frame in self._splitter.feed(data):
            self._intake.frame(frame)
        if self._splitter.oversized != self._oversized:
            self._stats.too_large += self._splitter.oversized - self._oversized
            self._oversized = self._splitter.oversized


class InputFileError(UserError):
    """An --input-file that names nothing readable."""


def capture_paths(pattern: str) -> list[str]:
    """The captures `--input-file PATTERN` replays, in order: the files its glob matches,
    else the path itself (gor's input_file.go expands it with filepath.Glob too).

    Each is opened once here, so that a missing, unreadable or directory path is one
    error line and exit 2 at start-up (InputFileError). gor only logs "No files match
    pattern" and replays nothing, which is easy to miss.
    """
    paths = sorted(glob.glob(pattern)) or [pattern]
    for path in paths:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise InputFileError(
                f"--input-file {path}: cannot read it ({exc.strerror}); give the path "
                "(or a glob pattern) of a capture written by --output-file"
            ) from None
    return paths


async def replay_file(config: InputConfig, paths: list[str], intake: Intake, log: EventLog) -> None:
    """Replay the captures at `paths` (from capture_paths), keeping the recorded gaps
    (scaled by `|N%`, capped by max-wait). A capture that cannot be read any more (moved
    or removed while --input-file-loop replays it) ends this input with an error event."""
    assert config.file is not None
    speed = config.file.speed_percent / 100
    while True:
        previous_ns: int | None = None
        for path in paths:
            try:
                previous_ns = await _replay_one(
                    path,
                    speed=speed,
                    max_wait=config.max_wait,
                    previous_ns=previous_ns,
                    intake=intake,
                )
            except OSError as exc:
                log.event(at="error", input="file", path=path, error=exc.strerror or str(exc))
                return
        if not config.loop:
            return


READ_SIZE = 256 * 1024


async def _replay_one(
    path: str,
    *,
    speed: float,
    max_wait: float,
    previous_ns: int | None,
    intake: Intake,
) -> int | None:
    splitter = gorproto.StreamSplitter()
    # Local-file reads of 256 KiB are short enough to do on the loop.
    with open(path, "rb") as handle:  # noqa: ASYNC230
        while True:
            chunk = handle.read(READ_SIZE)
            frames = splitter.feed(chunk) if chunk else []
            if not chunk:
                rest = splitter.finish()
                if rest:
                    frames.append(rest)
            for frame in frames:
                try:
                    stamp = gorproto.decode(frame).timestamp_ns
                except gorproto.MalformedMessage:
                    stamp = previous_ns or 0
                if previous_ns is not None and stamp > previous_ns:
                    wait = (stamp - previous_ns) / 1e9 / speed
                    if max_wait > 0:
                        wait = min(wait, max_wait)
                    await asyncio.sleep(wait)
                else:
                    await asyncio.sleep(0)  # let outputs run between bursts
                previous_ns = stamp if stamp else previous_ns
                intake.frame(frame)
            if not chunk:
                return previous_ns
