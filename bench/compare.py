"""Benchmark of the proxy's `--compare` against the same proxy without it (issue 10).

    python bench/compare.py [--rounds N] [--duration S] [--python PY] [--loop asyncio]

Two proxies run side by side in front of the same app (nginx, `return 200 "ok"`, one
worker), each mirroring to its own gor:// sink (bench/sink.py, which counts messages):
one plain, one with `--compare`. wrk loads them in turn with 32 keep-alive connections,
off, on, off, on..., and the script prints the medians of each: requests/s, p50 and p99,
the proxy's CPU seconds per 10k requests, and the messages each sink got per request
(1 without comparison, 2 with: the request and production's response). The target is at
most 30 % more CPU per request and no p99 change beyond the noise between rounds.

Each connection waits `--delay-ms` (10) between a response and its next request, so both
proxies get the same offered load, below what either can serve: a production-like load,
at which latency is comparable. `--delay-ms 0` saturates them instead (as bench/proxy.py
does); then the one that needs more CPU also serves fewer requests per loop iteration,
which costs more per request again, and its p99 grows with its queue.

Reuses bench/common.py (processes, nginx, wrk, /proc) and bench/proxy.py's sink and
proxy runners; prints the load average before and after, because on a shared machine
other work moves every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import common
from paths import PathSpec, RunningPath, start_path
from proxy import settle
from rounds import REQUESTS_PER_UNIT
from targets import SinkMirror

LOAD = common.Load(32, close=False)
WARMUP_SECONDS = 1


@dataclass
class Variant:
    """One proxy under test and what its rounds measured."""

    name: str
    proxy: RunningPath  # its mirror is the gor:// sink
    sink: SinkMirror
    runs: list[common.WrkResult] = field(default_factory=list)
    cpu_per_unit: list[float] = field(default_factory=list)
    system_share: list[float] = field(default_factory=list)  # of the CPU, in the kernel
    messages_per_request: list[float] = field(default_factory=list)
    counters: dict[str, str] = field(default_factory=dict)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if not ordered:
        return 0.0
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def start_variant(
    name: str,
    extra: Sequence[str],
    args: argparse.Namespace,
    children: common.Children,
    workdir: Path,
) -> Variant:
    sink = SinkMirror(children, workdir, gor=True)
    spec = PathSpec(name, "builtin", args.loop, python=args.python)
    bench = argparse.Namespace(args=args, children=children, workdir=workdir)
    proxy = start_path(bench, spec, sink, name, ["--stats-interval", "0", *extra])
    return Variant(name, proxy, sink)


def one_round(variant: Variant, app: common.Nginx, wrk: common.Wrk, seconds: int) -> None:
    count = variant.sink.count
    assert count is not None
    served_before, messages_before = app.requests(), count()
    user0, system0 = common.cpu_seconds(variant.proxy.session)
    result = wrk.run(variant.proxy.port, LOAD, seconds)
    served = app.requests() - served_before
    messages = settle(count, messages_before, 2 * served)
    user, system = common.cpu_seconds(variant.proxy.session)
    variant.runs.append(result)
    cpu = user - user0 + system - system0
    variant.cpu_per_unit.append(cpu / served * REQUESTS_PER_UNIT)
    variant.system_share.append((system - system0) / cpu if cpu else 0.0)
    variant.messages_per_request.append(messages / served if served else 0.0)
    print(
        f"  {variant.name}: {result.rps:8.0f} req/s p99 {result.p99_ms:.2f} ms,"
        f" cpu {variant.cpu_per_unit[-1]:.2f} s/10k ({variant.system_share[-1]:.0%} sys),"
        f" {variant.messages_per_request[-1]:.2f}"
        f" messages/request, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )


def table(variants: Sequence[Variant]) -> str:
    headers = ["proxy", "req/s", "p50 ms", "p99 ms", "CPU-s/10k req", "x off", "messages/req"]
    base = _median(variants[0].cpu_per_unit)
    rows = []
    for variant in variants:
        cpu = _median(variant.cpu_per_unit)
        rows.append(
            [
                variant.name,
                f"{_median([r.rps for r in variant.runs]):.0f}",
                f"{_median([r.p50_ms for r in variant.runs]):.2f}",
                f"{_median([r.p99_ms for r in variant.runs]):.2f}"
                f" ({min(r.p99_ms for r in variant.runs):.2f}-"
                f"{max(r.p99_ms for r in variant.runs):.2f})",
                f"{cpu:.2f} ({_median(variant.system_share):.0%} sys)",
                f"{cpu / base:.2f}" if base else "",
                f"{_median(variant.messages_per_request):.2f}",
            ]
        )
    return common.markdown_table(headers, rows)


def run(args: argparse.Namespace) -> int:
    children = common.Children()
    with (
        tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp,
        common.cleanup_on_exit(children),
    ):
        workdir = Path(tmp)
        args.app_port = common.free_port()
        app = common.Nginx(children, workdir, "app", common.SERVER_OK.format(port=args.app_port))
        wrk = common.Wrk(children, workdir)
        if args.delay_ms:  # wrk's script hook: wait this long before each request
            delay = f"\nfunction delay()\n  return {args.delay_ms}\nend\n"
            wrk.script.write_text(common.WRK_REPORT + delay)
        load_before = os.getloadavg()
        variants = [
            start_variant("off", (), args, children, workdir),
            start_variant("--compare", ("--compare",), args, children, workdir),
        ]
        for variant in variants:
            wrk.run(variant.proxy.port, LOAD, WARMUP_SECONDS)
        for index in range(args.rounds):
            print(f"round {index + 1}/{args.rounds}", flush=True)
            for variant in variants if index % 2 == 0 else variants[::-1]:
                one_round(variant, app, wrk, args.duration)
        load_after = os.getloadavg()
        for variant in variants:
            variant.proxy.stop()  # and its sink
            assert variant.proxy.log is not None
            stats = common.logfmt_events(variant.proxy.log, "stats")
            keep = ("requests", "mirrored", "dropped", "compare_sent", "compare_dropped")
            variant.counters = {k: v for k, v in stats[-1].items() if k in keep} if stats else {}
        print()
        print(report(variants, args, load_before, load_after))
    return 0


def report(
    variants: Sequence[Variant],
    args: argparse.Namespace,
    before: tuple[float, float, float],
    after: tuple[float, float, float],
) -> str:
    code = common.source_fingerprint(common.REPO_ROOT / "traffic_duplicator")
    lines = [
        f"Compare benchmark: {args.rounds} rounds x {args.duration} s per proxy, alternating,"
        " medians (p99: median, and range over the rounds); wrk -t1 -c32 keep-alive,"
        f" {args.delay_ms} ms between a response and the next request;"
        ' app = nginx `return 200 "ok"` (1 worker); mirror = gor:// bench/sink.py.',
        "",
        *common.machine_lines([("code", code)]),
        f"- load average before: {' '.join(f'{x:.2f}' for x in before)};"
        f" after: {' '.join(f'{x:.2f}' for x in after)}",
        "",
        table(variants),
        "",
    ]
    for variant in variants:
        counters = " ".join(f"{k}={v}" for k, v in variant.counters.items())
        lines.append(f"- {variant.name}: proxy's counters at exit (warm-up included): {counters}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run (default 3)")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the proxy")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="asyncio")
    parser.add_argument(
        "--delay-ms",
        type=int,
        default=10,
        help="per connection, between a response and the next request (0: saturate)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(parse_args(argv))
    except common.BenchError as exc:
        print(f"bench/compare.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "bench/compare.py: interrupted; every process it started was stopped", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
