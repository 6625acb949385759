"""The event loop the engines run on: uvloop when it is importable, else asyncio.

A dyno has no pip, so uvloop is never a requirement. The buildpack fetches its wheel at
build time (lib/uvloop.sh) into WHEEL_DIR, beside the package but not on PYTHONPATH, which
the app inherits; only the engines add it to their path.

TRAFFIC_DUPLICATOR_UVLOOP is a switch (`configvars.switch`: false, 0, no or off turn uvloop
off, for comparisons or if it misbehaves; true, 1, yes, on or unset keep it). The wrapper
and the build refuse any other word with one line (`read_uvloop`, which the build asks
through `python -m traffic_duplicator.loops --build-choice`); the engines themselves never
fail on it: a word they do not understand runs asyncio, the loop that is always there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from traffic_duplicator import configvars
from traffic_duplicator.errors import UserError

T = TypeVar("T")

UVLOOP_ENV = "TRAFFIC_DUPLICATOR_UVLOOP"
# .traffic-duplicator/lib/uvloop-wheel in a slug (lib/uvloop.sh); absent in a checkout.
WHEEL_DIR = Path(__file__).resolve().parent.parent / "uvloop-wheel"


class UvloopSettingError(UserError):
    """TRAFFIC_DUPLICATOR_UVLOOP holds a word that is not a switch."""


def _bad_uvloop(raw: str) -> UvloopSettingError:
    return UvloopSettingError(
        f"{UVLOOP_ENV}={raw.strip()!r} is not understood; use false, 0, no or off to run the "
        "engines on asyncio (true, 1, yes, on or unset use uvloop where it is installed)"
    )


def read_uvloop(env: Mapping[str, str]) -> bool:
    """Whether uvloop is wanted (True when unset); raises UvloopSettingError for a word that
    is not a switch. The wrapper and the build check it this way."""
    return configvars.read_switch(env, UVLOOP_ENV, True, _bad_uvloop)


def uvloop_wanted(env: Mapping[str, str]) -> bool:
    """`read_uvloop` for the engines, which must never fail on it: a word that is not a
    switch (only possible when an engine is started by hand) means asyncio."""
    try:
        return read_uvloop(env)
    except UvloopSettingError:
        return False


def new_event_loop() -> tuple[asyncio.AbstractEventLoop, str]:
    """A fresh event loop and its name for the logs ("uvloop" or "asyncio")."""
    if uvloop_wanted(os.environ):
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


def main(argv: Sequence[str] | None = None) -> int:
    """`--build-choice`: "uvloop" or "asyncio" on stdout, for lib/uvloop.sh to decide whether
    to fetch the wheel; a word that is not a switch is one line on stderr and exit 2."""
    parser = argparse.ArgumentParser(
        prog="python -m traffic_duplicator.loops",
        description=f"Say which event loop ${UVLOOP_ENV} asks the engines for.",
    )
    parser.add_argument("--build-choice", action="store_true", required=True)
    parser.parse_args(argv)
    try:
        wanted = read_uvloop(os.environ)
    except UserError as exc:
        sys.stderr.write(f"{exc}\n")
        return exc.exit_status
    print("uvloop" if wanted else "asyncio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
