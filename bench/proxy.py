"""Benchmark of the built-in tee proxy against the app served directly and nginx `mirror`.

    python bench/proxy.py [--rounds N] [--duration S] [--quick] [--scenarios a,b]
                          [--paths direct,nginx,asyncio,uvloop] [--chart FILE] ...

The app is a local nginx (`return 200 "ok"`, one worker). Each scenario starts every path
once (the built-in proxy on asyncio, on uvloop, nginx `mirror`), then in each round loads
each path in turn with wrk: direct, nginx, asyncio, uvloop, direct, nginx, ... so every
ratio compares runs a few seconds apart. It prints the medians as a markdown table with
the machine described, ready for the README, and can draw it as a PNG (bench/chart.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from common import (
    REPO_ROOT,
    SERVER_OK,
    BenchError,
    Children,
    Nginx,
    Wrk,
    cleanup_on_exit,
    free_port,
    interpreter,
    machine_busy,
    machine_lines,
    markdown_table,
    pin,
    source_fingerprint,
)
from paths import SCENARIOS, PathSpec, RunningPath, Scenario, Target, describe_python, start_path
from rounds import Run, ScenarioResult
from targets import Mirror, SinkMirror

WARMUP_SECONDS = 1
SETTLE_IDLE = 1.0  # the mirror count is final once it has not moved for this long...
SETTLE_MAX = 10.0  # ...or after this long
BUSY_WARNING = 0.15  # idle machine: well under this
DEFAULT_SCENARIOS = ("closegor32", "ka32", "ka1")
DEFAULT_PATHS = ("direct", "nginx", "asyncio", "uvloop")
# --pin: the path under test on its own vCPU, the load and the targets on the other.
PROXY_CPUS = {1}
LOAD_CPUS = {0}
SCENARIOS_HELP = ", ".join(SCENARIOS)


def settle(count: Callable[[], int], base: int, target: int) -> int:
    """Wait until the mirror has received `target` more, or stopped receiving; the delta."""
    deadline = time.monotonic() + SETTLE_MAX
    last, last_change = count() - base, time.monotonic()
    while last < target and time.monotonic() < deadline:
        time.sleep(0.05)
        now = count() - base
        if now != last:
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change >= SETTLE_IDLE:
            break
    return last


@dataclass
class Bench:
    """What every scenario shares: options, children, the app, the raw mirror, wrk."""

    args: argparse.Namespace
    children: Children
    workdir: Path
    app: Nginx
    http_mirror: Nginx
    wrk: Wrk


def mirror_for(bench: Bench, scenario: Scenario, spec: PathSpec) -> Mirror:
    """The mirror target a path gets in a scenario. nginx copies raw HTTP only, so it
    mirrors to the raw nginx target whatever the scenario's framing."""
    kind = scenario.mirror
    if kind is Target.HTTP or (spec.nginx and kind is Target.GOR):
        port = bench.args.mirror_port
        return Mirror(f"127.0.0.1:{port}", bench.http_mirror.requests, lambda: None)
    if kind is Target.DOWN:
        return Mirror(f"127.0.0.1:{free_port()}", None, lambda: None)
    gor = kind in (Target.GOR, Target.STALL_GOR)
    return SinkMirror(bench.children, bench.workdir, gor=gor, stall=kind.stalled)


def measure(bench: Bench, path: RunningPath, scenario: Scenario) -> Run:
    """One wrk run through `path`, with the app's and the mirror's counts around it."""
    app, wrk = bench.app, bench.wrk
    served_before = app.requests()
    mirror = path.mirror
    mirrored_before = mirror.count() if mirror is not None and mirror.count else 0
    cpu_before = path.cpu()
    result = wrk.run(path.port, scenario.load, bench.args.duration)
    mirrored = None
    if mirror is not None and mirror.count:
        mirrored = settle(mirror.count, mirrored_before, app.requests() - served_before)
    served = app.requests() - served_before  # after the mirror settled: stragglers count
    user, system = (after - before for after, before in zip(path.cpu(), cpu_before))
    return Run(result, served, mirrored, user + system, system, path.rss_mib())


def run_scenario(bench: Bench, scenario: Scenario) -> ScenarioResult:
    result = ScenarioResult(scenario.name, scenario.about, scenario.mirror.stalled)
    paths: list[RunningPath] = []
    try:
        for spec in bench.args.path_specs:
            if spec.nginx and not scenario.nginx_can:
                continue
            if spec.kind == "nginx-fresh" and not scenario.load.close:
                print(f"  {spec.name} skipped: it differs from nginx only for Connection: close")
                continue
            mirror = None if spec.kind in ("direct", "floor") else mirror_for(bench, scenario, spec)
            path = start_path(bench, spec, mirror, scenario.name)
            paths.append(path)
            if bench.args.pin and path.session:
                pin(path.session, PROXY_CPUS)
            if spec.kind != "direct":
                bench.wrk.run(path.port, scenario.load, WARMUP_SECONDS)  # not counted
                if mirror is not None and mirror.count:
                    settle(mirror.count, mirror.count(), 1 << 62)
        for index in range(bench.args.rounds):
            runs = {path.spec.name: measure(bench, path, scenario) for path in paths}
            result.rounds.append(runs)
            print(f"  {scenario.name} round {index + 1}/{bench.args.rounds}: " + describe(runs))
        for path in paths:
            result.notes[path.spec.name] = path.notes()
    finally:
        for path in reversed(paths):
            path.stop()
    return result


def describe(runs: dict[str, Run]) -> str:
    direct = runs.get("direct")
    parts = []
    for name, run in runs.items():
        text = f"{name} {run.wrk.rps:.0f}/s"
        if direct is not None and name != "direct" and direct.wrk.rps:
            text += f" ({run.wrk.rps / direct.wrk.rps:.2f}x, {run.cpu_per_10k:.2f} CPU-s/10k)"
        parts.append(text)
    return " | ".join(parts)


def pythons(args: argparse.Namespace) -> list[str]:
    """The interpreters that run the built-in proxy: --python, and any PATH=PYTHON."""
    found = [spec.python for spec in args.path_specs if spec.kind in ("builtin", "floor")]
    return list(dict.fromkeys(found or [args.python]))


def report(results: Sequence[ScenarioResult], args: argparse.Namespace, busy: float) -> str:
    paths = ", ".join(f"{spec.name} = {spec.describe}" for spec in args.path_specs)
    lines = [
        f"Proxy benchmark: {args.rounds} rounds x {args.duration} s per path, medians, paths"
        f' interleaved in every round; wrk -t1, app = nginx `return 200 "ok"` (1 worker),'
        " raw mirror = nginx (1 worker), gor mirror = bench/sink.py.",
        "",
        *machine_lines(
            [
                *(("proxy's Python", about) for about in args.python_descriptions),
                ("machine busy before the run", f"{busy:.0%}"),
                (
                    "CPUs",
                    "pinned: the proxy or nginx `mirror` on CPU 1, everything else on CPU 0"
                    if args.pin
                    else "shared by every process, nothing pinned",
                ),
                ("paths", paths),
                ("code", source_fingerprint(REPO_ROOT / "traffic_duplicator")),
            ]
        ),
        "",
    ]
    headers, rows = results[0].table_headers(), []
    for res in results:
        rows += res.table_rows()
    lines.append(markdown_table(headers, rows))
    notes = [
        f"- {res.about}, {name}: {text}" for res in results for name, text in res.notes.items()
    ]
    return "\n".join([*lines, "", *[n for n in notes if not n.endswith(": ")]])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the built-in tee proxy against the app direct and nginx mirror."
    )
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 3; quick 2)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 5; quick 2)")
    parser.add_argument("--quick", action="store_true", help="a smoke run, a minute or two")
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated, from {SCENARIOS_HELP} (default %(default)s)",
    )
    parser.add_argument(
        "--paths",
        default=",".join(DEFAULT_PATHS),
        help="comma-separated, from direct, nginx, nginx-fresh (a new app connection per"
        " request), floor (bench/floor.py), asyncio, uvloop; PATH:N runs the built-in"
        " proxy with --processes N, PATH@DIR the package from another checkout,"
        " PATH=PYTHON another interpreter (default %(default)s)",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that runs the built-in proxy; it needs uvloop for the uvloop path",
    )
    parser.add_argument("--chart", help="also draw the table as a PNG (needs matplotlib)")
    parser.add_argument("--json", help="also write every round's numbers to this file")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the proxy (or nginx `mirror`) alone on CPU 1, wrk, the app and the mirror"
        " targets on CPU 0: less noise for A/B runs, but not a dyno's sharing",
    )
    args = parser.parse_args(argv)
    args.python = interpreter(args.python)
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.duration = args.duration or (2 if args.quick else 5)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {SCENARIOS_HELP}")
    args.selected = [SCENARIOS[n] for n in names]
    try:
        args.path_specs = [PathSpec.parse(word, args.python) for word in args.paths.split(",")]
    except ValueError as exc:
        parser.error(str(exc))
    if args.pin and not os.sched_getaffinity(0) >= LOAD_CPUS | PROXY_CPUS:
        parser.error("--pin needs CPUs 0 and 1 (this process may run on fewer)")
    return args


def run(args: argparse.Namespace) -> int:
    children = Children()
    if args.pin:
        # Inherited by everything started from here; the process exits after the run, so
        # its own affinity is not restored.
        os.sched_setaffinity(0, LOAD_CPUS)
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp, cleanup_on_exit(children):
        workdir = Path(tmp)
        args.app_port, args.mirror_port = free_port(), free_port()
        app = Nginx(children, workdir, "app", SERVER_OK.format(port=args.app_port))
        http_mirror = Nginx(children, workdir, "mirror", SERVER_OK.format(port=args.mirror_port))
        bench = Bench(args, children, workdir, app, http_mirror, Wrk(children, workdir))
        args.path_specs = [spec for spec in args.path_specs if spec.usable(args)]
        args.python_descriptions = [describe_python(python) for python in pythons(args)]
        for about in args.python_descriptions:
            print(f"python: {about}", flush=True)
        busy = machine_busy()
        if busy > BUSY_WARNING:
            print(
                f"warning: the machine was {busy:.0%} busy before the benchmark started;"
                " other load makes the numbers noisy",
                flush=True,
            )
        results = []
        for scenario in args.selected:
            print(f"{scenario.name}: {scenario.about}", flush=True)
            results.append(run_scenario(bench, scenario))
        print()
        print(report(results, args, busy))
        if args.json:
            Path(args.json).write_text(
                json.dumps([asdict(r) for r in results], indent=1, default=str) + "\n"
            )
        if args.chart:
            from chart import draw

            print(draw(results, Path(args.chart), f"{args.rounds} rounds x {args.duration} s"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench/proxy.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench/proxy.py: interrupted; every process it started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
