"""The event loop the engines run on: uvloop when it is importable, else asyncio.

A dyno has no pip, so uvloop is never a requirement. The buildpack fetches its wheel at
build time (lib/uvloop.sh) into WHEEL_DIR, beside the package but not on PYTHONPATH, which
the app inherits; only the engines add it to their path. TRAFFIC_DUPLICATOR_UVLOOP=0 turns
it off (for comparisons, or if it misbehaves).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

UVLOOP_ENV = "TRAFFIC_DUPLICATOR_UVLOOP"
# .traffic-duplicator/lib/uvloop-wheel in a slug (lib/uvloop.sh); absent in a checkout.
WHEEL_DIR = Path(__file__).resolve().parent.parent / "uvloop-wheel"


def new_event_loop() -> tuple[asyncio.AbstractEventLoop, str]:
    """A fresh event loop and its name for the logs ("uvloop" or "asyncio")."""
    if os.environ.get(UVLOOP_ENV, "").strip() != "0":
        if WHEEL_DIR.is_dir() and str(WHEEL_DIR) not in sys.path:
            sys.path.insert(0, str(WHEEL_DIR))
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
