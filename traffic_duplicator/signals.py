"""Shutdown signals for the engines' event loops: the handlers record, the engine acts.

Both engines (the proxy and the replayer) read signals the same way. The first SIGTERM or
SIGINT asks for a graceful stop (the proxy drains, the replayer flushes); the next one asks
to hurry (stop waiting for what is still in flight). The wrapper relies on this: it sends
an engine one SIGTERM to start its stage of the shutdown and a second one when the stage's
part of the deadline is spent (see `wrapper/budget.py`).

The handlers only record what arrived and set two events; the engine's shutdown sequence
awaits them and logs (the idea of uvicorn's `capture_signals` and circus' `sighandler`).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Sequence
from enum import Enum
from typing import Any

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Ending(Enum):
    """How a bounded wait in a shutdown sequence ended."""

    DONE = "done"  # the work finished
    HURRIED = "hurried"  # a further signal asked us to stop waiting
    TIMED_OUT = "timed-out"  # the engine's own timeout passed


class ShutdownSignals:
    """What shutdown signals arrived: the first means "stop gracefully", the next "hurry"."""

    def __init__(self, signals: Sequence[signal.Signals] = SHUTDOWN_SIGNALS) -> None:
        self.signals = tuple(signals)
        self.received: list[str] = []  # signal names, in the order they arrived
        self.stop = asyncio.Event()  # set by the first signal (or by `request_stop`)
        self.hurry = asyncio.Event()  # set by every signal after the first

    def record(self, name: str) -> None:
        """The handler: note the signal and wake whoever waits; nothing else."""
        self.received.append(name)
        # Counted in signals only: a stop the engine asked itself is not hurried by a SIGTERM.
        (self.stop if len(self.received) == 1 else self.hurry).set()

    def request_stop(self) -> None:
        """A stop that no signal asked for (the replayer's --exit-after, its inputs' end)."""
        self.stop.set()

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in self.signals:
            loop.add_signal_handler(sig, self.record, sig.name)

    def signal_name(self, index: int) -> str | None:
        """The name of the index-th signal received (0 the first), if that many arrived."""
        return self.received[index] if index < len(self.received) else None

    async def finish(self, work: Awaitable[Any], timeout: float) -> Ending:
        """Wait up to `timeout` seconds for `work`, or until hurried; cancel it if unfinished.

        Raises nothing for the work's own failures: a shutdown step that fails has ended.
        """
        job: asyncio.Future[Any] = asyncio.ensure_future(work)
        hurry: asyncio.Future[Any] = asyncio.ensure_future(self.hurry.wait())
        await asyncio.wait([job, hurry], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if job.done():
            ending = Ending.DONE
        elif hurry.done():
            ending = Ending.HURRIED
        else:
            ending = Ending.TIMED_OUT
        for future in (job, hurry):
            future.cancel()
        # Collect the cancelled waits, so asyncio has no unretrieved exception to report.
        await asyncio.gather(job, hurry, return_exceptions=True)
        return ending
