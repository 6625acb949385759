"""Where the proxy's CPU time per request goes: `perf` samples scaled to /proc's CPU time.

    python bench/where.py [--seconds S] [--keep-alive] [--python PY] [--loop asyncio]

Same set-up as bench/syscalls.py (app nginx, gor:// sink, 32 wrk connections sending
`Connection: close` unless --keep-alive). While wrk runs, `perf record -g` samples the
proxy, kernel included, and /proc gives its user and system CPU seconds. With Python
3.12 or later the proxy runs with `-X perf`, so perf names each Python function.

Each sample goes to one bucket: the kernel, by the system call it was in (inclusive: the
loopback TCP stack runs inside the sending call, the peer's receive path included);
uvloop/libuv; or the innermost Python function on the stack (the interpreter's work for
it included: allocation, reference counting, calls into C). The CPU microseconds per
request are split between the buckets in proportion to their samples. perf's overhead
is small, but compare versions measured the same way, on the same machine.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from common import cpu_seconds, interpreter, require_tool
from syscalls import add_source_option, running_proxy

SAMPLE_HZ = "299"
# DWARF unwinding: CPython is built without frame pointers before 3.14, so a plain -g
# loses every frame above the interpreter's.
CALL_GRAPH = "dwarf,16384"
_FRAME = re.compile(r"^\s*[0-9a-f]+\s+(.+?)\s+\((.*)\)\s*$")
_SYSCALL = re.compile(r"^(?:__x64_sys|__se_sys|__do_sys|ksys|__sys)_(\w+)")
_WRAPPER = re.compile(r"^(?:__GI_)?_*(?:libc_)?(\w+?)(?:64)?$")


def frames(perf: str, data: Path) -> Iterator[list[tuple[str, str]]]:
    """Each sample's call chain, innermost first, as (symbol, dso) pairs."""
    argv = [perf, "script", "-i", str(data), "-F", "ip,sym,dso"]
    text = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    chain: list[tuple[str, str]] = []
    for line in text.splitlines():
        match = _FRAME.match(line)
        if match:
            chain.append((match[1].split("+0x")[0], match[2]))
        elif chain:
            yield chain
            chain = []
    if chain:
        yield chain


def python_name(symbol: str) -> str:
    """`py::Class.method:/path/to/file.py` -> `Class.method (file.py)`."""
    name, _, path = symbol.removeprefix("py::").partition(":")
    return f"{name} ({path.rsplit('/', 1)[-1]})"


def bucket(chain: list[tuple[str, str]]) -> tuple[str, str]:
    """(group, detail) of one sample."""
    _leaf, dso = chain[0]
    if "kernel" in dso:
        # The C library's wrapper that entered the kernel names the call (libuv enters
        # io_uring through syscall(2)); else the kernel's own entry point does.
        for symbol, where in chain:
            if "kernel" not in where:
                match = _WRAPPER.match(symbol)
                return "kernel", match[1] if match else symbol
        for symbol, _ in chain:
            match = _SYSCALL.match(symbol)
            if match:
                return "kernel", match[1]
        return "kernel", "no system call (interrupts, scheduling)"
    if "loop.cpython" in dso:
        return "uvloop/libuv", "uvloop/libuv"
    for symbol, _ in chain:
        if symbol.startswith("py::"):
            group = "asyncio" if "/asyncio/" in symbol else "python"
            return group, python_name(symbol)
    return "interpreter", "no Python function named"


def profile(args: argparse.Namespace) -> tuple[list[tuple[str, str]], float, float, int]:
    """(bucket of each sample, user CPU s, system CPU s, requests served)."""
    perf = require_tool("perf", "linux-perf")
    wrk = require_tool("wrk", "wrk")
    with running_proxy(args) as proxy:
        data = proxy.workdir / "perf.data"
        record = [perf, "record", "--call-graph", CALL_GRAPH, "-F", SAMPLE_HZ]
        record += ["-p", str(proxy.pid), "-o", str(data), "--", "sleep", str(args.seconds)]
        recorder = subprocess.Popen(
            record,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        before_cpu, before_served = cpu_seconds(proxy.pid), proxy.app.requests()
        load = [wrk, "-t1", f"-c{args.connections}", f"-d{args.seconds}s"]
        if not args.keep_alive:
            load += ["-H", "Connection: close"]
        load.append(f"http://127.0.0.1:{proxy.listen}/")
        subprocess.run(load, capture_output=True, check=False)
        after_cpu, served = cpu_seconds(proxy.pid), proxy.app.requests() - before_served
        recorder.wait(60)
        samples = [bucket(chain) for chain in frames(perf, data)]
    user, system = (after_cpu[i] - before_cpu[i] for i in (0, 1))
    return samples, user, system, served


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--keep-alive", action="store_true")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--loop", choices=("auto", "asyncio"), default="auto")
    parser.add_argument("--top", type=int, default=30, help="buckets shown (default 30)")
    add_source_option(parser)
    args = parser.parse_args(argv)
    args.python = interpreter(args.python)
    args.proxy, args.requests = "builtin", 0
    probe = [args.python, "-c", "import sys; print(sys.version_info >= (3, 12))"]
    modern = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()
    args.python_flags = ["-X", "perf"] if modern == "True" else []
    samples, user, system, served = profile(args)
    served = max(1, served)
    us = (user + system) / served * 1e6
    print(
        f"{served} requests in {args.seconds} s; proxy CPU {us:.1f} us/request"
        f" ({user / served * 1e6:.1f} user, {system / served * 1e6:.1f} system);"
        f" {len(samples)} samples"
    )
    total = len(samples) or 1
    print("\n| where | share | us/request |\n|---|---|---|")
    for name, count in collections.Counter(group for group, _ in samples).most_common():
        print(f"| {name} | {count / total:.1%} | {count / total * us:.1f} |")
    print("\n| group | detail | share | us/request |\n|---|---|---|---|")
    for (name, detail), count in collections.Counter(samples).most_common(args.top):
        print(f"| {name} | {detail} | {count / total:.1%} | {count / total * us:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
