"""Pairing production's response with each shadow's, by request id, within bounds.

Production's response (a type `2` message from the proxy) and a shadow's (read by the
replayer) arrive in either order: a fast staging app can answer before production's
response has crossed the hop. Whichever comes first waits in a table keyed by id.

Policy:
- The table holds at most `max_entries` ids and `max_bytes` of responses. A new arrival
  that does not fit evicts the oldest entries first; shadows evicted before production's
  response came are counted as dropped comparisons for their output and route.
- An entry waits at most `timeout` seconds (the output timeout), measured from its first
  arrival; shadows still unpaired then are dropped the same way. Production's responses
  that no shadow claimed expire silently: that output dropped, sampled or filtered the
  request, and the replayer's own counters say so.
- An entry is released as soon as `answers` shadows have answered (one per output, or
  one with `--split-output`).

Time comes from the caller (`now`, seconds on a monotonic clock), so tests run without
sleeping.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from traffic_duplicator.compare.model import RECORD_OVERHEAD, CapturedResponse

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Shadow:
    """A shadow's answer waiting for production's: which output, the route, the response."""

    output: int
    route: str
    response: CapturedResponse
    latency: float


@dataclass(frozen=True)
class Pair:
    production: CapturedResponse
    shadow: Shadow


@dataclass
class _Entry:
    created: float
    production: CapturedResponse | None = None
    shadows: list[Shadow] = field(default_factory=list)
    answered: int = 0
    size: int = RECORD_OVERHEAD


class PendingPairs:
    """The bounded waiting table; see the module docstring."""

    def __init__(
        self,
        answers: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._answers = max(answers, 1)
        self._timeout = timeout
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self.bytes = 0
        self.dropped: list[Shadow] = []  # shadows dropped since the caller last took them
        self.unclaimed = 0  # production's responses that expired with no shadow

    def __len__(self) -> int:
        return len(self._entries)

    def production(self, message_id: bytes, response: CapturedResponse, now: float) -> list[Pair]:
        """Production's response arrived: the pairs it completes (shadows that waited)."""
        self.expire(now)
        entry = self._entries.get(message_id)
        if entry is None:
            entry = self._add(message_id, response.size, now)
            if entry is None:
                return []
        elif entry.production is not None:
            return []  # a duplicate id: keep the first
        pairs = [Pair(response, shadow) for shadow in entry.shadows]
        self._shrink(entry, sum(shadow.response.size for shadow in entry.shadows))
        entry.shadows = []
        if entry.answered >= self._answers:
            self._remove(message_id)
        elif entry.production is None:
            entry.production = response
            self._grow(entry, response.size)
        return pairs

    def shadow(self, message_id: bytes, shadow: Shadow, now: float) -> Pair | None:
        """A shadow answered: its pair if production's response is here, else it waits."""
        self.expire(now)
        entry = self._entries.get(message_id)
        if entry is not None and entry.production is not None:
            pair = Pair(entry.production, shadow)
            self.answered(message_id, now)
            return pair
        if entry is None:
            entry = self._add(message_id, shadow.response.size, now)
            if entry is None:
                self.dropped.append(shadow)
                return None
        self._grow(entry, shadow.response.size)
        entry.shadows.append(shadow)
        entry.answered += 1
        return None

    def answered(self, message_id: bytes, now: float) -> None:
        """An output is done with this id without a response to pair (an error, a drop)."""
        entry = self._entries.get(message_id)
        if entry is None:
            return
        entry.answered += 1
        if entry.production is not None and entry.answered >= self._answers:
            self._remove(message_id)

    def expire(self, now: float) -> None:
        deadline = now - self._timeout
        while self._entries:
            message_id, entry = next(iter(self._entries.items()))
            if entry.created > deadline:
                break
            self._evict(message_id)

    def take_dropped(self) -> list[Shadow]:
        dropped, self.dropped = self.dropped, []
        return dropped

    # -- bookkeeping -------------------------------------------------------------------

    def _add(self, message_id: bytes, size: int, now: float) -> _Entry | None:
        """A new entry, after evicting the oldest until `size` more bytes would fit."""
        needed = size + RECORD_OVERHEAD
        if needed > self._max_bytes:
            return None
        while self._entries and (
            len(self._entries) >= self._max_entries or self.bytes + needed > self._max_bytes
        ):
            self._evict(next(iter(self._entries)))
        entry = _Entry(now)
        self._entries[message_id] = entry
        self.bytes += entry.size
        return entry

    def _grow(self, entry: _Entry, size: int) -> None:
        entry.size += size
        self.bytes += size
        # An entry that grows past the budget pushes older ones out, never itself.
        while self.bytes > self._max_bytes and len(self._entries) > 1:
            oldest = next(iter(self._entries))
            if self._entries[oldest] is entry:
                break
            self._evict(oldest)

    def _shrink(self, entry: _Entry, size: int) -> None:
        entry.size -= size
        self.bytes -= size

    def _evict(self, message_id: bytes) -> None:
        entry = self._remove(message_id)
        self.dropped.extend(entry.shadows)
        if entry.production is not None and entry.answered == 0:
            self.unclaimed += 1

    def _remove(self, message_id: bytes) -> _Entry:
        entry = self._entries.pop(message_id)
        self.bytes -= entry.size
        return entry
