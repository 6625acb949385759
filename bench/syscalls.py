"""System calls per proxied request, counted with `strace -c -f`.

    python bench/syscalls.py [--requests N] [--connections C] [--keep-alive]
                             [--proxy builtin|nginx-mirror|nginx-fresh] [--python PY]
                             [--loop asyncio] [--mirror gor|http] [--source DIR]

The app is a local nginx (`return 200 "ok"`). The built-in proxy mirrors with gor://
framing to bench/sink.py (the wrapper's default hop), or with --mirror http raw HTTP to a
second nginx like bench/proxy.py's keep-alive scenarios; nginx `mirror` copies raw HTTP to
a second nginx over keep-alive upstreams. After a warm-up, strace attaches to the running
proxy (every thread; for nginx, its one worker), wrk sends a fixed number of requests
(`Connection: close` unless --keep-alive) and stops, strace detaches, and each system
call's count is divided by the requests the app served meanwhile. Start-up (imports,
binding) is not counted. strace slows the proxy down a lot, so only the counts mean
anything here, never the times.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from common import (
    REPO_ROOT,
    SERVER_MIRROR,
    SERVER_MIRROR_FRESH,
    SERVER_OK,
    BenchError,
    Children,
    Nginx,
    cleanup_on_exit,
    free_port,
    interpreter,
    require_tool,
    session_pids,
    wait_for_port,
)
from targets import SinkMirror, proxy_env

# wrk stops its thread after this many responses (its script counts them).
STOP_AFTER = """\
local seen = 0
response = function(status, headers, body)
  seen = seen + 1
  if seen >= {count} then wrk.thread:stop() end
end
"""
WARMUP_REQUESTS = 500
T = TypeVar("T")


def add_load_options(parser: argparse.ArgumentParser, requests: int) -> None:
    """The load and the proxy under it, as bench/syscalls.py and bench/calls.py take them."""
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--keep-alive", action="store_true")
    parser.add_argument(
        "--mirror",
        choices=("gor", "http"),
        default="gor",
        help="the built-in proxy's mirror: gor:// to bench/sink.py (default), or raw HTTP"
        " to an nginx answering 200",
    )
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--loop", choices=("auto", "asyncio"), default="auto")
    add_source_option(parser)


def add_source_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO_ROOT,
        help="checkout whose traffic_duplicator runs (default: this one), for before/after",
    )


def parse_summary(text: str) -> dict[str, int]:
    """{syscall: calls} from `strace -c` output."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        words = line.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(words) >= 5 and words[0].replace(".", "").isdigit() and words[3].isdigit():
            name = words[-1]
            if name != "total":
                counts[name] = counts.get(name, 0) + int(words[3])
    return counts


def run_wrk(wrk: str, workdir: Path, port: int, count: int, args: argparse.Namespace) -> None:
    script = workdir / f"stop-{count}.lua"
    script.write_text(STOP_AFTER.format(count=count))
    argv = [wrk, "-t1", f"-c{args.connections}", "-d60s", "-s", str(script)]
    if not args.keep_alive:
        argv += ["-H", "Connection: close"]
    subprocess.run(
        [*argv, f"http://127.0.0.1:{port}/"], capture_output=True, check=True, timeout=120
    )


def proxy_pid(session: int, nginx: bool) -> int:
    """The process to trace: the proxy itself, or nginx's worker (not its master)."""
    pids = sorted(session_pids(session))
    if nginx:
        workers = [pid for pid in pids if pid != session]
        if len(workers) != 1:
            raise BenchError(f"expected one nginx worker, found {workers}")
        return workers[0]
    return session


@dataclass
class Running:
    """A proxy in front of the app, ready for wrk."""

    listen: int
    pid: int  # the process to trace or profile
    app: Nginx
    workdir: Path
    wrk: str


@contextlib.contextmanager
def running_proxy(args: argparse.Namespace) -> Iterator[Running]:
    """The app, the mirror target and the proxy (built-in or nginx), warmed up."""
    wrk = require_tool("wrk", "wrk")
    children = Children()
    with tempfile.TemporaryDirectory(prefix="bench-syscalls-") as tmp, cleanup_on_exit(children):
        workdir = Path(tmp)
        app_port, listen = free_port(), free_port()
        app = Nginx(children, workdir, "app", SERVER_OK.format(port=app_port))
        nginx = args.proxy.startswith("nginx")
        if nginx:
            mirror_port = free_port()
            Nginx(children, workdir, "mirror", SERVER_OK.format(port=mirror_port))
            config = SERVER_MIRROR if args.proxy == "nginx-mirror" else SERVER_MIRROR_FRESH
            server = config.format(port=listen, app_port=app_port, mirror_port=mirror_port)
            session = Nginx(children, workdir, "proxy", server).session
        else:
            if getattr(args, "mirror", "gor") == "http":  # raw HTTP, as bench/proxy.py's ka1
                mirror_port = free_port()
                Nginx(children, workdir, "mirror", SERVER_OK.format(port=mirror_port))
                target = f"127.0.0.1:{mirror_port}"
            else:
                target = SinkMirror(children, workdir, gor=True).target
            argv = [args.python, *getattr(args, "python_flags", []), "-m"]
            argv += ["traffic_duplicator.proxy", "-l", str(listen)]
            argv += ["-r", f"127.0.0.1:{app_port}", "-d", target]
            log = workdir / "proxy.log"
            # From the source checkout: `python -m` puts it first on the path.
            env = proxy_env(args.loop, args.source)
            proc = children.spawn(argv, log=log, env=env, cwd=args.source)
            wait_for_port(listen, proc, "the proxy", log)
            session = proc.pid
        run_wrk(wrk, workdir, listen, WARMUP_REQUESTS, args)
        time.sleep(0.5)
        yield Running(listen, proxy_pid(session, nginx), app, workdir, wrk)


def count(args: argparse.Namespace) -> tuple[dict[str, int], int]:
    """(syscall counts, requests the app served) for one traced run."""
    strace = require_tool("strace", "strace")
    with running_proxy(args) as proxy:
        out = proxy.workdir / "strace.txt"
        tracer = subprocess.Popen([strace, "-c", "-f", "-o", str(out), "-p", str(proxy.pid)])
        time.sleep(1.0)  # strace attaches every thread
        before = proxy.app.requests()
        run_wrk(proxy.wrk, proxy.workdir, proxy.listen, args.requests, args)
        time.sleep(0.5)  # closes after the last response
        served = proxy.app.requests() - before
        os.kill(tracer.pid, signal.SIGINT)  # detach and write the summary
        tracer.wait(30)
        return parse_summary(out.read_text()), served


def measure(script: str, run: Callable[[], tuple[T, int]]) -> tuple[T, int] | None:
    """`run()`'s (counts, requests served), or None after one line saying why not."""
    try:
        counts, served = run()
    except (BenchError, subprocess.SubprocessError) as exc:
        print(f"{script}: {exc}", file=sys.stderr)
        return None
    if not served:
        print(f"{script}: the app served nothing", file=sys.stderr)
        return None
    return counts, served


def report(counts: dict[str, int], served: int, title: str) -> str:
    lines = [f"{title}: {served} requests, system calls per request", ""]
    lines += ["| system call | per request |", "|---|---|"]
    for name, calls in sorted(counts.items(), key=lambda item: -item[1]):
        if calls / served >= 0.01:
            lines.append(f"| {name} | {calls / served:.2f} |")
    lines.append(f"| **total** | **{sum(counts.values()) / served:.2f}** |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_options(parser, requests=2000)
    # nginx-fresh: nginx mirror with a new app connection per request (see common.py).
    parser.add_argument(
        "--proxy", choices=("builtin", "nginx-mirror", "nginx-fresh"), default="builtin"
    )
    args = parser.parse_args(argv)
    args.python = interpreter(args.python)
    measured = measure("bench/syscalls.py", lambda: count(args))
    if measured is None:
        return 1
    counts, served = measured
    what = args.proxy.replace("-", " ") if args.proxy != "builtin" else f"built-in ({args.loop})"
    print(report(counts, served, what))
    return 0


if __name__ == "__main__":
    sys.exit(main())
