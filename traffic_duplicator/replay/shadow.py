"""The replayer's side of shadow comparison (issue 10): pair, compare, record.

With TRAFFIC_DUPLICATOR_COMPARE on (the wrapper turns it on together with the tee proxy's
`--compare`), the replayer:

- hands each type `2` message (production's response to request `<id>`, from `--input-tcp`
  or `--input-file`) to the `Comparer`, and writes it to every stream output;
- reads each `--output-http` destination's whole response on a `RecordingConnection`:
  status, headers, the body up to the body limit plus the length and SHA-256 of all of it
  (`compare.capture.ResponseRecorder`), and the time from sending the request to the end of
  its response. That is GoReplay's type `3`: it goes to the `Comparer` as the shadow's
  answer, and to every stream output as a type `3` message, as gor's
  `--output-http-track-response` writes it;
- counts a request that its destination did not answer (timeout, refused, bad response) as
  an error of that output and route;
- logs what `Comparer.tick()` returns every second, and what `close()` returns at exit.

Routes are named from the request as it arrived, before `--http-rewrite-url` or an output
URL's path changed it: production answered that one. Requests without an id (on
`--input-http`) are replayed and never compared, since nothing could pair them.

Memory: the `Comparer` bounds what waits for its pair (count, bytes, age); a recording
connection holds at most one response of at most the body limit. Comparing never stops
replay: anything unexpected here is counted and logged at most every few seconds, and the
request was replayed all the same.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Sequence
from typing import NamedTuple

from traffic_duplicator import gorproto
from traffic_duplicator.compare import (
    Comparer,
    CompareSettings,
    ResponseRecorder,
    decode_response,
    encode_response,
)
from traffic_duplicator.compare.comparer import Scope
from traffic_duplicator.compare.model import CapturedResponse
from traffic_duplicator.compare.pairing import DEFAULT_TIMEOUT
from traffic_duplicator.logs import EventLog, RateLimitedLog
from traffic_duplicator.replay.output_http import Connection, HttpOutput, Item
from traffic_duplicator.replay.output_stream import StreamOutput
from traffic_duplicator.replay.request import Request

TICK_INTERVAL = 1.0  # seconds between Comparer.tick() calls


class Tag(NamedTuple):
    """What comparison keeps of a replayed request: its id, and its method and target as
    they arrived (they name the route)."""

    message_id: bytes
    method: bytes
    target: bytes


def request_target(head: bytes) -> bytes:
    """The request-target of a request head (RFC 9112 section 3), b"" if there is none."""
    parts = head[: head.find(b"\r\n")].split(b" ", 2)
    return parts[1] if len(parts) > 1 else b""


def dyno_name() -> str:
    """`$DYNO` (web.1 on Heroku), else the host name: the lines' `source=`."""
    return os.environ.get("DYNO", "").strip() or socket.gethostname()


class RecordingConnection(Connection):
    """A keep-alive connection that also records each compared response, bounded.

    The recorder sees the same bytes as the connection's own parser, first, so the record
    is ready when the parser says the response ended.
    """

    def __init__(self, output: HttpOutput, body_limit: int) -> None:
        super().__init__(output)
        self._body_limit = body_limit
        self.recorder: ResponseRecorder | None = None
        self.recorded: list[CapturedResponse] = []

    def send(self, item: Item) -> None:
        self.recorded = []
        self.recorder = None
        if item.tag is not None:
            self.recorder = ResponseRecorder(self._body_limit)
            self.recorder.expect(item.head_request)
        super().send(item)

    def data_received(self, data: bytes) -> None:
        recorder = self.recorder
        if recorder is not None and not recorder.stopped:
            self.recorded += recorder.feed(data)
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.recorder is not None:
            self.recorded += self.recorder.eof()  # a body that ran until the close
        super().connection_lost(exc)

    def take(self) -> CapturedResponse | None:
        """The response recorded for the request in flight, once; None if it did not parse."""
        recorded = self.recorded
        self.recorded, self.recorder = [], None
        return recorded[0] if recorded else None


class CompareHub:
    """One replayer's comparison: the Comparer, the outputs' taps, the stream outputs."""

    def __init__(self, settings: CompareSettings, scope: Scope, log: EventLog) -> None:
        self.settings = settings
        self.comparer = Comparer(settings, scope)
        self._log = log
        self._errors = RateLimitedLog(log)
        self._streams: list[StreamOutput] = []
        self.malformed = 0  # type 2 messages that did not hold a response
        self.internal_errors = 0

    @classmethod
    def for_outputs(
        cls, settings: CompareSettings, outputs: Sequence[HttpOutput], split: bool, log: EventLog
    ) -> CompareHub:
        """The hub for these HTTP outputs, in options-file order (the baseline's positions).

        With `--split-output` each request goes to one output, so one answer completes it.
        Raises CompareSettingsError when the baseline names none of them.
        """
        scope = Scope(
            outputs=tuple(output.name for output in outputs),
            source=dyno_name(),
            answers=1 if split else None,
            timeout=outputs[0].config.timeout if outputs else DEFAULT_TIMEOUT,
        )
        hub = cls(settings, scope, log)
        for index, output in enumerate(outputs):
            output.tap = OutputTap(hub, index)
        return hub

    def add_stream(self, stream: StreamOutput) -> None:
        """A file or stdout output, which records the responses too."""
        self._streams.append(stream)

    def production(self, message: gorproto.Message) -> None:
        """A type `2` message: production's response to request `message.message_id`."""
        try:
            self._production(message)
        except Exception as exc:  # the input's connection must survive a comparison bug
            self.internal_error(exc)

    def _production(self, message: gorproto.Message) -> None:
        try:
            response = decode_response(message, self.settings.body_limit)
        except ValueError:
            self.malformed += 1
            return
        self.comparer.observe_production(message.message_id, response)
        if self._streams:
            frame = gorproto.encode(
                message.payload,
                gorproto.RESPONSE,
                message.message_id,
                message.timestamp_ns,
                message.latency,
            )
            self._write(frame)

    def shadow(self, output: int, tag: Tag, response: CapturedResponse, latency: float) -> None:
        """Output `output` answered the request `tag` names with `response`."""
        response = dataclasses.replace(response, latency=latency)
        self.comparer.observe_shadow(
            output, tag.message_id, response, method=tag.method, target=tag.target
        )
        if self._streams:
            latency_ns = int(latency * 1e9)
            frame = encode_response(
                tag.message_id,
                response,
                latency_ns,
                time.time_ns() - latency_ns,  # when the request was sent, as gor stamps it
                kind=gorproto.REPLAYED_RESPONSE,
            )
            self._write(frame)

    def error(self, output: int, tag: Tag) -> None:
        self.comparer.observe_error(output, tag.message_id, method=tag.method, target=tag.target)

    def internal_error(self, exc: Exception) -> None:
        """Something in comparison went wrong: count it, say it (rate-limited), go on."""
        self.internal_errors += 1
        self._errors.event(
            "compare", at="error", process="replayer", error=f"comparison: {exc!r}"[:200]
        )

    def tick(self) -> None:
        """Log the lines that are due; call about every second."""
        for line in self.comparer.tick():
            self._log.line(line)

    def close(self) -> None:
        """Log the last lines (`final=true`)."""
        for line in self.comparer.close():
            self._log.line(line)

    def _write(self, frame: bytes) -> None:
        for stream in self._streams:
            stream.write_frame(frame)


class OutputTap:
    """What one `--output-http` tells comparison (`HttpOutput.tap`)."""

    __slots__ = ("_hub", "_index")

    def __init__(self, hub: CompareHub, index: int) -> None:
        self._hub = hub
        self._index = index

    def connection(self, output: HttpOutput) -> Connection:
        return RecordingConnection(output, self._hub.settings.body_limit)

    def tag(self, request: Request) -> Tag | None:
        if request.message_id is None:
            return None
        target = request.original_target or request_target(request.head)
        return Tag(request.message_id, request.method, target)

    def answered(self, conn: Connection, item: Item, latency: float) -> None:
        tag = item.tag
        if not isinstance(tag, Tag) or not isinstance(conn, RecordingConnection):
            return
        hub = self._hub
        try:
            response = conn.take()
            if response is None:  # the parser accepted what the recorder could not read
                hub.error(self._index, tag)
            else:
                hub.shadow(self._index, tag, response, latency)
        except Exception as exc:  # comparing must never break the output's connection
            hub.internal_error(exc)

    def failed(self, item: Item) -> None:
        tag = item.tag
        if isinstance(tag, Tag):
            try:
                self._hub.error(self._index, tag)
            except Exception as exc:  # as in answered()
                self._hub.internal_error(exc)
