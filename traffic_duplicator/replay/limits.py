"""Per-output limits (`URL|N`, `URL|N%`) and the FNV-1a hash gor's limiters sample with."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from traffic_duplicator.options import Limit, LimitKind

FNV32_OFFSET = 2166136261
FNV32_PRIME = 16777619
FNV32_MASK = 0xFFFFFFFF


def fnv1a_32(data: bytes) -> int:
    """32-bit FNV-1a, the hash gor's --http-header-limiter and --http-param-limiter use."""
    value = FNV32_OFFSET
    for byte in data:
        value = ((value ^ byte) * FNV32_PRIME) & FNV32_MASK
    return value


def hash_sampled(value: bytes, percent: int) -> bool:
    """Whether a request with this header or parameter value is in the N % sample."""
    return fnv1a_32(value) % 100 < percent


class Limiter:
    """Admits requests: at most N a second (the rest dropped, not delayed), or N % at random."""

    __slots__ = ("_clock", "_count", "_kind", "_random", "_value", "_window")

    def __init__(
        self,
        limit: Limit,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._kind = limit.kind
        self._value = limit.value
        self._clock = clock
        self._random = rand
        self._window = -1
        self._count = 0

    def allow(self) -> bool:
        if self._kind is LimitKind.PERCENT:
            return self._random() * 100 < self._value
        # A fixed one-second window, as gor counts: simple and never lets a burst exceed N.
        window = int(self._clock())
        if window != self._window:
            self._window = window
            self._count = 0
        if self._count >= self._value:
            return False
        self._count += 1
        return True
