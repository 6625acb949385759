"""The event loop the engines run on: uvloop when it happens to be importable, else asyncio.

A dyno has no pip, so uvloop is never a requirement; TRAFFIC_DUPLICATOR_UVLOOP=0 turns it off
(for comparisons, or if it misbehaves).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

UVLOOP_ENV = "TRAFFIC_DUPLICATOR_UVLOOP"


def new_event_loop() -> tuple[asyncio.AbstractEventLoop, str]:
    """A fresh event loop and its name for the logs ("uvloop" or "asyncio")."""
    if os.environ.get(UVLOOP_ENV, "").strip() != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop(), "uvloop"
    return asyncio.new_event_loop(), "asyncio"


def running_loop_name() -> str:
    """ "uvloop" or "asyncio": which loop runs the caller, for the logs."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a new loop (asyncio.run, but on `new_event_loop()`).

    Tasks still pending afterwards (connects cut short by a shutdown) are cancelled and
    awaited, so no "task was destroyed" noise reaches the logs.
    """
    loop, _ = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
