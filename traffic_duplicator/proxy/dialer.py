"""What a mirror target needs from the event loop: its clock, its callbacks, and connecting.

In production both are asyncio's (or uvloop's). The transcript tests pass a fake clock
and a fake dialer instead, and play the network's part by hand: connection made, attempt
failed, bytes answered, connection lost, time advanced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from traffic_duplicator.proxy.connection import Cancellable

if TYPE_CHECKING:
    from traffic_duplicator.proxy.connection import MirrorConnection


class Clock(Protocol):
    """The part of an event loop a mirror target uses (asyncio.AbstractEventLoop has it)."""

    def time(self) -> float: ...

    def call_soon(self, callback: Callable[[], object]) -> object: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> Cancellable: ...


class Dial(Protocol):
    """Start connecting `conn`. The outcome is reported to its target: `connection_made`
    (then `MirrorTarget.connected`), or `MirrorTarget.connect_failed` once `conn.attempt`
    is cleared (a finished attempt needs no cancelling)."""

    def __call__(self, conn: MirrorConnection) -> Cancellable: ...


class TcpDialer:
    """Connects over TCP with the running loop; one named task per attempt."""

    __slots__ = ("_host", "_name", "_port")

    def __init__(self, host: str, port: int, name: str) -> None:
        self._host = host
        self._port = port
        self._name = f"mirror-connect {name}"

    def __call__(self, conn: MirrorConnection) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(self._connect(conn), name=self._name)

    async def _connect(self, conn: MirrorConnection) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: conn, self._host, self._port)
        except OSError as exc:
            conn.attempt = None  # over: nothing to cancel
            conn.target.connect_failed(conn, exc.strerror or type(exc).__name__)
        # A cancellation (a reset, a timeout, shutdown) is the target's own doing: it
        # propagates, and the task ends cancelled.
