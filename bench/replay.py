"""Benchmark the built-in replayer: capacity, delivery at 25/50/100 % of it, RSS under overload.

    .venv/bin/python bench/replay.py [--rounds 3] [--seconds 8]

Load: wrk against `--input-http` (a Lua `delay()` paces it for the fixed-rate steps).
Destination: nginx answering 200, counting requests with stub_status, so deliveries are
counted by the destination, not by the replayer. Capacity is the delivered rate while
wrk sends as fast as it can; the fixed-rate steps report delivered / sent (wrk does not
count requests still in flight when it stops, so a ratio can read a little over 100 %).
Overload: 16 KiB POSTs as fast as wrk can send, to two outputs, one of which accepts
and never reads, so its queue stays full and drops; RSS is sampled from /proc. The
capacity and delivery figures are medians of several rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from common import REPO_ROOT, SERVER_OK, Children, Nginx, free_port, wait_for_port

WRK_CONNECTIONS_FLOOD = 32
PACED_DELAY_MS = 20  # per-connection pause; connections = rate * delay
CALIBRATION_SECONDS = 2
HEADERS = (
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench",
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language: en-US,en;q=0.5",
    "Cookie: session=0123456789abcdef0123456789abcdef; theme=dark",
    "X-Request-Id: 7f8e9d0c-1b2a-4c3d-9e8f-0a1b2c3d4e5f",
)


@dataclass
class Sink:
    """The destination: nginx answering "ok", counting what it serves via stub_status."""

    port: int
    nginx: Nginx

    def requests(self) -> int:
        return self.nginx.requests()


@contextlib.contextmanager
def nginx_sink(workdir: Path) -> Iterator[Sink]:
    children = Children()
    try:
        port = free_port()
        yield Sink(port, Nginx(children, workdir, f"sink-{port}", SERVER_OK.format(port=port)))
    finally:
        children.stop_all()


@contextlib.contextmanager
def replayer(sink: Sink, *extra: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    argv = [
        sys.executable,
        "-m",
        "traffic_duplicator.replay",
        "--input-http",
        f"127.0.0.1:{port}",
        "--output-http",
        f"http://127.0.0.1:{sink.port}",
        *extra,
    ]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for_port(port, proc, "replayer")
        yield port, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def wrk(port: int, seconds: float, connections: int, script: Path | None = None) -> int:
    """Run wrk; return how many requests it completed (each answered 200 by the replayer)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--timeout", "5s"]
    for header in HEADERS:
        argv += ["-H", header]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(f"http://127.0.0.1:{port}/search?q=mirror&page=2")
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30)
    match = re.search(r"(\d+) requests in", out.stdout)
    if match is None:
        raise SystemExit(f"cannot read wrk output:\n{out.stdout}\n{out.stderr}")
    return int(match.group(1))


def wait_delivered(sink: Sink, before: int, expected: int, settle: float = 3.0) -> int:
    """Wait until the sink stops counting (queues drained), then return the delivered count."""
    last, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        count = sink.requests() - before
        if count >= expected:
            return count
        if count != last:
            last, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since > settle:
            return count
        time.sleep(0.2)
    return last


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure_flood(sink: Sink, port: int, seconds: float) -> tuple[float, float]:
    """(accepted/s, delivered/s) while wrk sends as fast as it can."""
    before = sink.requests()
    start = time.monotonic()
    sent = wrk(port, seconds, WRK_CONNECTIONS_FLOOD)
    elapsed = time.monotonic() - start
    delivered_during = sink.requests() - before
    wait_delivered(sink, before, sent)
    return sent / elapsed, delivered_during / elapsed


def calibrate(port: int, rate: float, script: Path) -> int:
    """Connections that bring wrk's paced load near `rate` (latency adds to each pause)."""
    connections = max(1, round(rate * PACED_DELAY_MS / 1000))
    for _ in range(2):
        achieved = wrk(port, CALIBRATION_SECONDS, connections, script) / CALIBRATION_SECONDS
        if abs(achieved - rate) < rate * 0.05:
            break
        connections = max(1, round(connections * rate / max(achieved, 1.0)))
    return connections


def measure_paced(
    sink: Sink, port: int, connections: int, seconds: float, script: Path
) -> tuple[float, float]:
    """(sent/s, delivered fraction) with `connections` paced wrk connections."""
    before = sink.requests()
    sent = wrk(port, seconds, connections, script)
    delivered = wait_delivered(sink, before, sent)
    return sent / seconds, delivered / sent if sent else 0.0


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A destination that accepts connections and never reads: the worst case for memory."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1024)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def measure_overload(sink: Sink, hole: int, seconds: float, workdir: Path) -> list[tuple[str, str]]:
    """RSS while wrk floods POSTs with 16 KiB bodies and one of two outputs never reads."""
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.body = string.rep("x", 16384)\n'
        'wrk.headers["Content-Type"] = "text/plain"\n'
    )
    rows: list[tuple[str, str]] = []
    with replayer(sink, "--output-http", f"http://127.0.0.1:{hole}") as (port, proc):
        time.sleep(1)  # no warm-up: small requests would fill the stuck queue first
        idle = rss_kib(proc.pid)
        before = sink.requests()
        flood = subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{WRK_CONNECTIONS_FLOOD}",
                f"-d{round(seconds)}s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}/overload",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        samples: list[int] = []
        while flood.poll() is None:
            samples.append(rss_kib(proc.pid))
            time.sleep(0.5)
        out = flood.communicate()[0]
        match = re.search(r"(\d+) requests in", out)
        sent = int(match.group(1)) if match else 0
        delivered = wait_delivered(sink, before, sent)
    half = max(1, len(samples) // 2)
    peak = max(samples, default=idle)
    rows.append((f"overload: {seconds:.0f} s of 16 KiB POSTs, one output never reads", ""))
    rows.append(("  accepted (req/s)", f"{sent / seconds:,.0f}"))
    rows.append(("  delivered to the healthy output", f"{delivered / sent:.2%}" if sent else "-"))
    rows.append(("  RSS before / peak (MiB)", f"{idle / 1024:.1f} / {peak / 1024:.1f}"))
    rows.append(("  RSS growth (MiB)", f"{(peak - idle) / 1024:.1f}"))
    rows.append(
        (
            "  RSS median, first vs second half (MiB)",
            f"{statistics.median(samples[:half]) / 1024:.1f} vs "
            f"{statistics.median(samples[half:] or samples) / 1024:.1f}",
        )
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--overload-seconds", type=float, default=30.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (make system-packages installs it)")
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        workdir = Path(tmp)
        script = workdir / "paced.lua"
        script.write_text(f"function delay()\n  return {PACED_DELAY_MS}\nend\n")
        with nginx_sink(workdir) as sink, replayer(sink) as (port, _):
            wrk(port, 2, 8)  # warm up: connections, imports, caches
            time.sleep(1)
            floods = [measure_flood(sink, port, args.seconds) for _ in range(args.rounds)]
            accepted = statistics.median(a for a, _ in floods)
            capacity = statistics.median(d for _, d in floods)
            rows.append(("accepted under overload (req/s)", f"{accepted:,.0f}"))
            rows.append(("capacity: delivered under overload (req/s)", f"{capacity:,.0f}"))
            for percent in (25, 50, 100):
                connections = calibrate(port, capacity * percent / 100, script)
                time.sleep(1)
                results = [
                    measure_paced(sink, port, connections, args.seconds, script)
                    for _ in range(args.rounds)
                ]
                rate = statistics.median(r for r, _ in results)
                delivery = statistics.median(d for _, d in results)
                worst = min(d for _, d in results)
                rows.append(
                    (
                        f"delivery at {percent}% of capacity ({rate:,.0f} req/s sent)",
                        f"{delivery:.2%} (worst round {worst:.2%})",
                    )
                )
        with nginx_sink(workdir) as sink, black_hole() as hole:
            rows += measure_overload(sink, hole, args.overload_seconds, workdir)
    width = max(len(name) for name, _ in rows)
    print(f"replayer benchmark: {args.rounds} rounds x {args.seconds:g} s, medians")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
