"""Python calls per proxied request, counted with cProfile.

    python bench/calls.py [--requests N] [--connections C] [--keep-alive] [--python PY]
                          [--loop asyncio] [--mirror gor|http] [--source DIR] [--top N]

Same set-up as bench/syscalls.py (app nginx, the built-in proxy mirroring to
bench/sink.py with gor:// framing, wrk sending `Connection: close` unless --keep-alive),
with the proxy started under `python -m cProfile`. After the warm-up and a fixed number
of requests, the proxy stops and cProfile writes its counts; each function's calls are
divided by the requests the app served (warm-up included). Functions called less than
once per 100 requests (start-up, imports) are left out of the total. Built-in functions
and C methods count as calls too: they are what the bytecode calls into.

Like strace, cProfile slows the proxy down: only the counts mean anything here, never
the times. Compare versions with --source, on the same interpreter.
"""

from __future__ import annotations

import argparse
import pstats
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common import BenchError, interpreter
from syscalls import add_load_options, measure, run_wrk, running_proxy

PER_REQUEST_FLOOR = 0.01  # calls per request below which a function is start-up work
PROFILE_WAIT = 30.0  # seconds for the stopped proxy to write its profile


def profile(args: argparse.Namespace) -> tuple[list[tuple[float, str]], int]:
    """Run the proxy under cProfile: (calls per request, the requests the app served)."""
    args.proxy = "builtin"
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp:
        out = Path(tmp) / "proxy.prof"
        args.python_flags = ["-m", "cProfile", "-o", str(out)]
        with running_proxy(args) as proxy:
            run_wrk(proxy.wrk, proxy.workdir, proxy.listen, args.requests, args)
            time.sleep(0.5)  # closes after the last response
            served = proxy.app.requests()
        # Leaving running_proxy stopped the proxy; cProfile writes as the interpreter exits.
        deadline = time.monotonic() + PROFILE_WAIT
        while not out.exists() or out.stat().st_size == 0:
            if time.monotonic() > deadline:
                raise BenchError(f"the proxy wrote no profile within {PROFILE_WAIT:.0f} s")
            time.sleep(0.1)
        time.sleep(0.2)  # the write may still be under way
        return per_request(pstats.Stats(str(out)), max(served, 1)), served


def per_request(stats: pstats.Stats, served: int) -> list[tuple[float, str]]:
    """[(calls per request, function)], most called first, above PER_REQUEST_FLOOR."""
    rows = []
    # pstats keeps its table in an attribute that typeshed does not declare.
    table: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    table = getattr(stats, "stats")  # noqa: B009
    for (path, line, name), (_, calls, _, _, _) in table.items():
        if calls / served >= PER_REQUEST_FLOOR:
            # A built-in's name says what it is; a Python function's needs its place.
            place = "/".join(Path(path).parts[-2:]) + f":{line} " if line else ""
            rows.append((calls / served, place + name))
    rows.sort(key=lambda row: -row[0])
    return rows


def report(rows: list[tuple[float, str]], served: int, top: int, title: str) -> str:
    lines = [f"{title}: {served} requests, Python calls per request", ""]
    lines += ["| calls per request | function |", "|---|---|"]
    lines += [f"| {calls:.2f} | `{name}` |" for calls, name in rows[:top]]
    lines.append(f"| **{sum(calls for calls, _ in rows):.1f}** | **total** |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_options(parser, requests=20000)
    parser.add_argument("--top", type=int, default=40, help="functions shown (default 40)")
    args = parser.parse_args(argv)
    args.python = interpreter(args.python)
    measured = measure("bench/calls.py", lambda: profile(args))
    if measured is None:
        return 1
    rows, served = measured
    load = "keep-alive" if args.keep_alive else "Connection: close"
    print(report(rows, served, args.top, f"built-in ({args.loop}), {load}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
