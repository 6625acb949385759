"""The engines' output: each line of a child's pipe copied to our fd behind `name | `.

Formatting only (honcho's printer.py): prefixes, bytes decoded with `replace`, a bounded
line, one write per line. The app's output never comes through here: it keeps our fds.
An engine's line is masked (traffic_duplicator.redact) on its way: our engines mask their
own, but a real gor prints output URLs, and with them their passwords, as it was given them.
"""

from __future__ import annotations

import os
import threading
from typing import IO

from traffic_duplicator.redact import mask_text

# A line longer than this is passed on in pieces, so a child cannot make us buffer without end.
MAX_LINE = 64 * 1024
STDOUT = 1
STDERR = 2

# One lock per output fd keeps each prefixed line in a single write.
_write_locks: dict[int, threading.Lock] = {}
_write_locks_guard = threading.Lock()


def _write_lock(fd: int) -> threading.Lock:
    with _write_locks_guard:
        return _write_locks.setdefault(fd, threading.Lock())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class LinePump(threading.Thread):
    """Copies a child's pipe to one of our fds, a prefix before every line, flushed per line."""

    def __init__(self, source: IO[bytes], fd: int, prefix: str) -> None:
        super().__init__(name=f"pump {prefix.strip()} fd{fd}", daemon=True)
        self._source = source
        self._fd = fd
        self._prefix = prefix

    def run(self) -> None:
        with self._source:
            while True:
                try:
                    line = self._source.readline(MAX_LINE)
                except (OSError, ValueError):
                    return
                if not line:
                    return
                text = self._prefix + mask_text(line.decode("utf-8", "replace"))
                if not text.endswith("\n"):
                    text += "\n"
                try:
                    with _write_lock(self._fd):
                        _write_all(self._fd, text.encode("utf-8"))
                except OSError:
                    # Our own output is gone (a closed pipe): keep draining so the child
                    # never blocks on a full pipe.
                    continue
