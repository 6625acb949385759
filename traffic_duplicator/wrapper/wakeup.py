"""The wrapper's signals: handlers that only record, and a wakeup fd the loop sleeps on.

SIGTERM, SIGINT and SIGHUP are recorded for the supervisor; SIGCHLD only wakes the loop
(the supervisor reaps on every tick). Python runs handlers between bytecodes of the main
thread, so the loop could miss a signal that lands just before it sleeps; the wakeup fd
(`signal.set_wakeup_fd`) makes `select` return for it anyway.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
from collections.abc import Callable
from types import FrameType

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Wakeup:
    """Installed handlers and the socket pair behind the wakeup fd; `restore()` undoes both."""

    def __init__(self, record: Callable[[int], None]) -> None:
        self._record = record
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for sig in SHUTDOWN_SIGNALS:
            if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
                continue  # started under nohup: keep ignoring hangups, as the app alone would
            self._previous[sig] = signal.signal(sig, self._handler)
        # SIGCHLD needs a Python-level handler for the wakeup fd to see it.
        self._previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)

    def _handler(self, signum: int, _frame: FrameType | None) -> None:
        # Handlers only record; the loop acts (and the wakeup fd has already woken it).
        self._record(signum)

    def wait(self, timeout: float) -> None:
        """Sleep until a signal arrives or `timeout` seconds pass."""
        with contextlib.suppress(InterruptedError):
            select.select([self._reader], [], [], max(0.0, timeout))
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._reader.recv(512):
                pass

    def restore(self) -> None:
        signal.set_wakeup_fd(-1)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._reader.close()
        self._writer.close()
