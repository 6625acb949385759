"""Benchmark the replayer's capacity with shadow comparison on, against off, in one run.

    python3 bench/compare_replay.py [--rounds 3] [--seconds 5]

Input: GoReplay frames on `--input-tcp`, as the tee proxy sends them with `--compare`:
each request (type 1, `GET /api/items/N` with browser-like headers) followed by
production's response to it (type 2: a 1 KiB JSON document). The same frames feed both
runs; with comparison off the replayer skips the type 2 messages.
Destination: nginx answering that same JSON, counting requests with stub_status; so every
comparison parses and walks two equal JSON documents and compares the headers (Date and
Server are ignored): the common case of a shadow that behaves.
Each round starts a fresh replayer, sends as fast as TCP lets it for `--seconds`, and
reads: delivered/s (nginx's count over the window), the replayer's CPU seconds per 10,000
delivered (/proc/PID/stat), and with comparison on the share of delivered requests that
were compared (the at=compare lines, against nginx's count once the queue is flushed).
Rounds alternate off, on, off, on...; figures are medians, and "on/off" is the median of
the per-round ratios. The load average and the machine's busy share before the run are
printed with the results: others' load moves every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import (
    REPO_ROOT,
    BenchError,
    Children,
    Nginx,
    cleanup_on_exit,
    cpu_seconds,
    free_port,
    logfmt_events,
    machine_busy,
    machine_lines,
    source_fingerprint,
    wait_for_port,
)

SEPARATOR = "\n🐵🙈🙉\n".encode()
DOCUMENT = json.dumps(
    {
        "id": 1,
        "name": "Widget",
        "tags": ["blue", "small", "sale"],
        "price": {"amount": 1299, "currency": "EUR"},
        "description": "x" * 700,
        "stock": [{"warehouse": f"w{i}", "count": i * 3} for i in range(6)],
    },
    separators=(",", ":"),
)
HEADERS = (
    b"Host: app.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench\r\n"
    b"Accept: application/json\r\n"
    b"Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n"
)
PRODUCTION = (
    b"HTTP/1.1 200 OK\r\nServer: production\r\nDate: Mon, 01 Jan 2026 00:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    % (len(DOCUMENT), DOCUMENT.encode())
)
# The JSON document as nginx's answer: `return 200 '...'` with the JSON type.
SERVER_JSON = """\
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    default_type application/json;
    location / {{ return 200 '{document}'; }}
  }}
"""
BATCH = 500  # pairs of frames per sendall


def frames(start: int, count: int) -> bytes:
    """`count` request + response pairs, ids from `start` (a cheap template: the sender
    must outrun the replayer)."""
    out = []
    for n in range(start, start + count):
        ident = b"%024x" % n
        out.append(b"1 %s 1700000000000000000 0\nGET /api/items/%d HTTP/1.1\r\n" % (ident, n))
        out.append(HEADERS + b"\r\n" + SEPARATOR)
        out.append(b"2 %s 1700000000000000000 1500000\n" % ident + PRODUCTION + SEPARATOR)
    return b"".join(out)


@dataclass
class Round:
    compare: bool
    sent: float  # pairs sent per second
    delivered: float  # requests nginx served per second, during the window
    compared: float  # pairs compared / requests delivered, the window and the flush (0 if off)
    cpu_per_10k: float  # replayer CPU seconds per 10,000 delivered


def send_for(port: int, seconds: float) -> int:
    """Push frames as fast as the replayer reads them, for `seconds`; pairs sent."""
    sent = 0
    deadline = time.monotonic() + seconds
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        while time.monotonic() < deadline:
            sock.sendall(frames(sent, BATCH))
            sent += BATCH
    return sent


@dataclass(frozen=True)
class Setup:
    children: Children
    nginx: Nginx
    dest: int  # nginx's port
    workdir: Path


def one_round(setup: Setup, compare: bool, seconds: float) -> Round:
    children, nginx, dest, workdir = setup.children, setup.nginx, setup.dest, setup.workdir
    port = free_port()
    log = workdir / f"replayer-{port}.log"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TRAFFIC_DUPLICATOR_UVLOOP="0")
    env["TRAFFIC_DUPLICATOR_COMPARE"] = "on" if compare else "off"
    env["TRAFFIC_DUPLICATOR_COMPARE_INTERVAL"] = "1"
    argv = [
        sys.executable, "-m", "traffic_duplicator.replay", "--input-tcp", f"127.0.0.1:{port}",
        "--output-http", f"http://127.0.0.1:{dest}",
    ]  # fmt: skip
    proc = children.spawn(argv, log=log, env=env)
    try:
        wait_for_port(port, proc, "replayer", log)
        cpu0 = sum(cpu_seconds(proc.pid))
        served0 = nginx.requests()
        start = time.monotonic()
        sent = send_for(port, seconds)
        elapsed = time.monotonic() - start
        delivered = nginx.requests() - served0
        cpu = sum(cpu_seconds(proc.pid)) - cpu0
    finally:
        children.stop(proc)  # SIGTERM: the queue flushed, the last at=compare lines, exit
    total = nginx.requests() - served0
    compared = sum(int(event["compared"]) for event in logfmt_events(log, "compare"))
    return Round(
        compare,
        sent / elapsed,
        delivered / elapsed,
        compared / max(total, 1),
        cpu / max(delivered, 1) * 10_000,
    )


def median(rounds: list[Round], field: str) -> float:
    return float(statistics.median(getattr(r, field) for r in rounds))


def report(rounds: list[Round], args: argparse.Namespace, load: str, busy: float) -> None:
    off = [r for r in rounds if not r.compare]
    on = [r for r in rounds if r.compare]
    ratios = [b.delivered / a.delivered for a, b in zip(off, on) if a.delivered]
    cpu_ratios = [b.cpu_per_10k / a.cpu_per_10k for a, b in zip(off, on) if a.cpu_per_10k]
    print(f"replayer capacity, comparison off vs on: {args.rounds} rounds x {args.seconds:g} s")
    print(f"  load average before: {load}; machine busy before: {busy:.0%}")
    print("  | comparison | sent pairs/s | delivered req/s | compared | CPU-s per 10k |")
    print("  |---|---|---|---|---|")
    for name, group in (("off", off), ("on", on)):
        print(
            f"  | {name} | {median(group, 'sent'):,.0f} | {median(group, 'delivered'):,.0f} "
            f"| {median(group, 'compared'):.1%} | {median(group, 'cpu_per_10k'):.2f} |"
        )
    print(f"  on/off delivered: {statistics.median(ratios):.2f}x; "
          f"CPU per request: {statistics.median(cpu_ratios):.2f}x")  # fmt: skip
    print(f"  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for line in machine_lines([("code", source_fingerprint(REPO_ROOT / "traffic_duplicator"))]):
        print(f"  {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    busy = machine_busy()
    children = Children()
    rounds: list[Round] = []
    with cleanup_on_exit(children), tempfile.TemporaryDirectory(prefix="bench-cmp-") as tmp:
        workdir = Path(tmp)
        dest = free_port()
        document = DOCUMENT.replace("'", "\\'")
        nginx = Nginx(children, workdir, "dest", SERVER_JSON.format(port=dest, document=document))
        setup = Setup(children, nginx, dest, workdir)
        for n in range(args.rounds):
            for compare in (False, True):
                rounds.append(one_round(setup, compare, args.seconds))
                print(f"  round {n + 1}: {rounds[-1]}", file=sys.stderr)
    report(rounds, args, load, busy)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"compare_replay: {exc}")
