"""Logfmt lines for run-time events, and a rate limit for repetitive error lines.

Every text value is masked on the way out (redact.mask_text): URL passwords and the values
of secret-named fields never reach a log line, whoever logs them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from traffic_duplicator.redact import mask_text

LogValue = str | int | float | bool | None


def _quote(value: LogValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    elif isinstance(value, int):
        text = str(value)
    else:
        text = mask_text(value)  # no password or credential reaches a log line
    # Quote only when a value would otherwise split or confuse a logfmt parser.
    if text == "" or any(c in text for c in ' ="\\') or not text.isprintable():
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return text


def logfmt(**fields: LogValue) -> str:
    """Render fields as `key=value` pairs in the order given."""
    return " ".join(f"{key}={_quote(value)}" for key, value in fields.items())


class EventLog:
    """Writes one logfmt line per event, prefixed with a source name, flushed at once."""

    def __init__(self, source: str | None, stream: TextIO | None = None) -> None:
        self._prefix = f"{source} " if source else ""
        self._stream = stream

    def event(self, **fields: LogValue) -> None:
        self.line(logfmt(**fields))

    def line(self, text: str) -> None:
        """Write a line already in logfmt (built with `logfmt`, so already masked)."""
        stream = self._stream if self._stream is not None else sys.stderr
        try:
            stream.write(f"{self._prefix}{text}\n")
            stream.flush()
        except (OSError, ValueError):
            # A closed or broken log pipe must never take an engine down.
            pass


class RateLimitedLog:
    """Lets one line per key through every `interval` seconds and counts the rest.

    nginx writes an error line per failed mirror request; under a dead target that is
    tens of MB a second. We log the first failure, then a summary of what was held back.
    """

    def __init__(
        self,
        log: EventLog,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._interval = interval
        self._clock = clock
        self._next_allowed: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def event(self, key: str, **fields: LogValue) -> bool:
        """Log the event unless `key` logged within the interval; True if it was written."""
        now = self._clock()
        if now < self._next_allowed.get(key, float("-inf")):
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            fields = {**fields, "suppressed": suppressed}
        self._log.event(**fields)
        self._next_allowed[key] = now + self._interval
        return True
