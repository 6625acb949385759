"""Benchmark of the built-in tee proxy against the app served directly.

    python bench/proxy.py [--rounds N] [--duration S] [--quick] [--scenarios a,b] ...

The app is a local nginx (`return 200 "ok"`, one worker). Each scenario loads it with
wrk, alternately direct and through the proxy (direct, proxy, direct, proxy, ...), and
prints the medians: requests/s, latency p50/p99, the proxy/direct ratio (median of the
per-round ratios), the proxy's CPU seconds per 10k requests, its peak RSS and the share
of the requests served through it that reached the mirror target. The output is a
markdown table with the machine description, ready for bench/README.md.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import (
    REPO_ROOT,
    SERVER_MIRROR,
    SERVER_OK,
    BenchError,
    Children,
    Load,
    Nginx,
    Wrk,
    WrkResult,
    cleanup_on_exit,
    command_output,
    cpu_seconds,
    free_port,
    log_tail,
    logfmt_events,
    machine_busy,
    machine_lines,
    markdown_table,
    open_fds,
    peak_rss_mib,
    read_counters,
    rss_mib,
    source_fingerprint,
    tcp_memory_mib,
    wait_for_port,
)

BENCH_DIR = Path(__file__).resolve().parent
WARMUP_SECONDS = 1
SETTLE_IDLE = 1.0  # the mirror count is final once it has not moved for this long...
SETTLE_MAX = 10.0  # ...or after this long
BUSY_WARNING = 0.15  # idle machine: well under this
REQUESTS_PER_UNIT = 10_000  # CPU is reported per 10k requests, as in the issue


class Target(enum.Enum):
    """The mirror target of a scenario."""

    HTTP = "raw HTTP to an nginx that counts requests"
    GOR = "gor:// framing to bench/sink.py, which counts messages"
    STALL = "raw HTTP to bench/sink.py --mode stall, which never reads"
    STALL_GOR = "gor:// framing to bench/sink.py --mode stall"
    DOWN = "raw HTTP to a port where nothing listens"

    @property
    def stalled(self) -> bool:
        return self in (Target.STALL, Target.STALL_GOR)


@dataclass(frozen=True)
class Scenario:
    name: str
    load: Load
    mirror: Target
    about: str


CLOSE = "32 connections, Connection: close"
CLOSE_GOR = "32 Connection: close, gor:// mirror"
STALLED = "32 keep-alive, 1 KiB requests, mirror stalled"
STALLED_GOR = "32 keep-alive, 1 KiB requests, gor:// mirror stalled"
SCENARIOS = {
    s.name: s
    for s in (
        Scenario("ka32", Load(32, close=False), Target.HTTP, "32 keep-alive connections"),
        Scenario("ka1", Load(1, close=False), Target.HTTP, "1 keep-alive connection"),
        Scenario("close32", Load(32, close=True), Target.HTTP, CLOSE),
        Scenario("gor32", Load(32, close=False), Target.GOR, "32 keep-alive, gor:// mirror"),
        Scenario("closegor32", Load(32, close=True), Target.GOR, CLOSE_GOR),
        # 1 KiB requests: a target that stops reading fills the socket buffers sooner.
        Scenario("stall32", Load(32, False, cookie_bytes=1024), Target.STALL, STALLED),
        Scenario("stallgor32", Load(32, False, cookie_bytes=1024), Target.STALL_GOR, STALLED_GOR),
        Scenario("down32", Load(32, close=False), Target.DOWN, "32 keep-alive, mirror port closed"),
    )
}
DEFAULT_SCENARIOS = ("ka32", "ka1", "close32", "gor32", "stall32")
BUILTIN_COMMAND = "{python} -m traffic_duplicator.proxy -l {listen} -r {app} -d {mirror}"


# ---------------------------------------------------------------------------- results


@dataclass
class Round:
    direct: WrkResult
    proxied: WrkResult
    served: int  # requests the app served during the proxied run (nginx's counter)
    mirrored: int | None  # requests/messages the mirror target received, if it counts
    cpu: float  # proxy CPU seconds during the proxied run and the mirror's catch-up
    cpu_system: float  # the part of `cpu` spent in the kernel (socket calls, mostly)
    rss_mib: float  # proxy resident set after the round
    fds: int  # file descriptors the proxy holds after the round
    tcp_mib: float  # the kernel's TCP buffers after the round (whole machine)

    @property
    def ratio(self) -> float:
        return self.proxied.rps / self.direct.rps if self.direct.rps else 0.0

    @property
    def cpu_per_unit(self) -> float:
        return self.cpu / self.served * REQUESTS_PER_UNIT if self.served else 0.0

    @property
    def system_share(self) -> float:
        return self.cpu_system / self.cpu if self.cpu else 0.0

    @property
    def delivery(self) -> float | None:
        if self.mirrored is None or not self.served:
            return None
        return 100.0 * self.mirrored / self.served


@dataclass
class ScenarioResult:
    scenario: Scenario
    rounds: list[Round] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    mirror_connections: int | None = None
    loop: str = ""  # from the proxy's `at=listening` line
    counters: dict[str, str] = field(default_factory=dict)  # its last `at=stats` line


# ---------------------------------------------------------------------------- targets


class Mirror:
    """The mirror target of one scenario and how to read what it received."""

    def __init__(
        self, target: str, count: Callable[[], int] | None, stop: Callable[[], None]
    ) -> None:
        self.target = target  # the proxy's -d argument
        self.count = count
        self.stop = stop

    def connections(self) -> int | None:
        return None


class SinkMirror(Mirror):
    """bench/sink.py: counts gor messages (`gor`), or never reads (`stall`, `stall-gor`)."""

    def __init__(self, children: Children, workdir: Path, kind: Target) -> None:
        mode = "gor" if kind is Target.GOR else "stall"
        port, self.control = free_port(), free_port()
        log = workdir / f"sink-{kind.name.lower()}.log"
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        argv = [sys.executable, str(BENCH_DIR / "sink.py"), "--port", str(port)]
        argv += ["--control-port", str(self.control), "--mode", mode]
        proc = children.spawn(argv, log=log, env=env)
        wait_for_port(self.control, proc, f"sink ({mode})", log)
        target = f"127.0.0.1:{port}" if kind is Target.STALL else f"gor://127.0.0.1:{port}"
        counts = (lambda: read_counters(self.control)["messages"]) if mode == "gor" else None
        super().__init__(target, counts, lambda: children.stop(proc))

    def connections(self) -> int | None:
        return read_counters(self.control)["connections"]


class ProxyUnderTest:
    """The proxy process (or process group) for one scenario."""

    def __init__(self, args: argparse.Namespace, children: Children, workdir: Path) -> None:
        self.args = args
        self.children = children
        self.workdir = workdir
        self.session = 0
        self.log = workdir / "proxy.log"
        self._stop: Callable[[], None] = lambda: None

    def env(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        if self.args.loop == "asyncio":
            env["TRAFFIC_DUPLICATOR_UVLOOP"] = "0"
        return env

    def start(self, listen: int, app_port: int, mirror: str, label: str) -> None:
        if self.args.proxy == "nginx-mirror":
            if not mirror.startswith("127.0.0.1:"):
                raise BenchError(
                    "--proxy nginx-mirror mirrors raw HTTP only (scenarios ka*, close*)"
                )
            server = SERVER_MIRROR.format(
                port=listen, app_port=app_port, mirror_port=mirror.split(":")[1]
            )
            nginx = Nginx(self.children, self.workdir, f"proxy-{label}", server)
            wait_for_port(listen, nginx.proc, "nginx mirror proxy", nginx.log)
            self.session, self.log = nginx.session, nginx.log
            self._stop = lambda: self.children.stop(nginx.proc)
            return
        template = self.args.proxy_cmd or BUILTIN_COMMAND
        argv = [
            word.format(
                python=self.args.python, listen=listen, app=f"127.0.0.1:{app_port}", mirror=mirror
            )
            for word in shlex.split(template)
        ]
        if self.args.profile:
            # cProfile writes its file when the proxy exits normally (SIGINT, see stop()).
            profile = f"{self.args.profile}.{label}"
            if argv[1:2] != ["-m"]:
                raise BenchError("--profile needs a `PYTHON -m MODULE ...` proxy command")
            argv = [argv[0], "-m", "cProfile", "-o", profile, *argv[1:]]
        self.log = self.workdir / f"proxy-{label}.log"
        proc = self.children.spawn(argv, log=self.log, env=self.env(), cwd=REPO_ROOT)
        wait_for_port(listen, proc, "the proxy", self.log)
        self.session = proc.pid

        def stop() -> None:
            if self.args.profile and proc.poll() is None:
                os.kill(proc.pid, 2)  # SIGINT: a normal exit, so cProfile writes its file
                deadline = time.monotonic() + 10
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.1)
            self.children.stop(proc)

        self._stop = stop

    def stop(self) -> None:
        self._stop()

    def describe(self) -> str:
        if self.args.proxy == "nginx-mirror":
            return "nginx `mirror` + `proxy_pass` (keepalive upstreams), 1 worker"
        if self.args.proxy_cmd:
            return f"`{self.args.proxy_cmd}`"
        python = self.args.python
        version = command_output([python, "-c", "import sys; print(sys.version.split()[0])"])
        probe = "import uvloop; print(uvloop.__version__)"
        uvloop = command_output([python, "-c", probe], env=self.env())
        if self.args.loop == "asyncio":
            loop = "asyncio (TRAFFIC_DUPLICATOR_UVLOOP=0)"
        elif uvloop and "Error" not in uvloop:
            loop = f"uvloop {uvloop}"
        else:
            loop = "asyncio (uvloop not importable)"
        return f"built-in, Python {version} ({python}), loop: {loop}"


# ---------------------------------------------------------------------------- running


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
    http_mirror: Nginx | None
    wrk: Wrk


def run_scenario(bench: Bench, scenario: Scenario) -> ScenarioResult:
    args, children, workdir = bench.args, bench.children, bench.workdir
    app, http_mirror, wrk = bench.app, bench.http_mirror, bench.wrk
    result = ScenarioResult(scenario)
    if scenario.mirror is Target.HTTP:
        assert http_mirror is not None
        mirror = Mirror(f"127.0.0.1:{args.mirror_port}", http_mirror.requests, lambda: None)
    elif scenario.mirror in (Target.GOR, Target.STALL, Target.STALL_GOR):
        mirror = SinkMirror(children, workdir, scenario.mirror)
    else:
        mirror = Mirror(f"127.0.0.1:{free_port()}", None, lambda: None)
    proxy = ProxyUnderTest(args, children, workdir)
    listen = free_port()
    try:
        proxy.start(listen, args.app_port, mirror.target, scenario.name)
        # Warm-up (not counted): connections, caches, the mirror's connection.
        wrk.run(listen, scenario.load, WARMUP_SECONDS)
        if mirror.count:
            settle(mirror.count, mirror.count(), 1 << 62)
        for index in range(args.rounds):
            direct = wrk.run(args.app_port, scenario.load, args.duration)
            served_before = app.requests()
            mirrored_before = mirror.count() if mirror.count else 0
            cpu_before = cpu_seconds(proxy.session)
            proxied = wrk.run(listen, scenario.load, args.duration)
            mirrored = None
            if mirror.count:
                mirrored = settle(mirror.count, mirrored_before, app.requests() - served_before)
            # Read after the mirror settled: requests still on their way to the app count.
            served = app.requests() - served_before
            user, system = cpu_seconds(proxy.session)
            user, system = user - cpu_before[0], system - cpu_before[1]
            session = proxy.session
            one = Round(
                direct,
                proxied,
                served,
                mirrored,
                cpu=user + system,
                cpu_system=system,
                rss_mib=rss_mib(session),
                fds=open_fds(session),
                tcp_mib=tcp_memory_mib(),
            )
            result.rounds.append(one)
            print(f"  {scenario.name} round {index + 1}/{args.rounds}: {describe_round(one)}")
        result.peak_rss_mib = peak_rss_mib(proxy.session)
        result.mirror_connections = mirror.connections()
    except BenchError as exc:
        raise BenchError(f"{exc}\n--- proxy log:\n{log_tail(proxy.log)}") from None
    finally:
        proxy.stop()
        mirror.stop()
    if args.profile:
        print(f"  cProfile: {args.profile}.{scenario.name} (python -m pstats to read it)")
    listening = logfmt_events(proxy.log, "listening")
    result.loop = listening[0].get("loop", "") if listening else ""
    stats = logfmt_events(proxy.log, "stats")
    if stats:
        keep = ("requests", "mirrored", "dropped", "failed", "connections", "unframed")
        result.counters = {k: v for k, v in stats[-1].items() if k in keep}
    return result


def describe_round(one: Round) -> str:
    text = (
        f"direct {one.direct.rps:8.0f} req/s | proxy {one.proxied.rps:8.0f} req/s"
        f" ({one.ratio:.2f}x) p99 {one.proxied.p99_ms:.1f} ms,"
        f" cpu {one.cpu_per_unit:.2f} s/10k ({one.system_share:.0%} sys),"
        f" rss {one.rss_mib:.1f} MiB, fds {one.fds}"
    )
    if one.delivery is not None:
        text += f", mirror {one.delivery:.1f}%"
    errors = one.direct.errors + one.proxied.errors
    return text + (f", wrk errors {errors}" if errors else "")


# ---------------------------------------------------------------------------- report


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def table(results: Sequence[ScenarioResult]) -> str:
    headers = [
        "load",
        "path",
        "req/s",
        "x direct",
        "p50 ms",
        "p99 ms",
        "proxy CPU-s/10k req",
        "proxy peak RSS MiB",
        "mirror delivered",
        "wrk errors",
    ]
    rows = []
    for res in results:
        r = res.rounds
        rows.append(
            [
                res.scenario.about,
                "direct",
                f"{median([x.direct.rps for x in r]):.0f}",
                "1.00",
                f"{median([x.direct.p50_ms for x in r]):.2f}",
                f"{median([x.direct.p99_ms for x in r]):.2f}",
                "",
                "",
                "",
                str(sum(x.direct.errors for x in r)),
            ]
        )
        deliveries = [d for d in (x.delivery for x in r) if d is not None]
        if deliveries:
            delivered = f"{median(deliveries):.1f} %"
            if min(deliveries) < median(deliveries) - 0.05:
                delivered += f" (min {min(deliveries):.1f})"
        elif res.scenario.mirror.stalled:
            delivered = f"stalled ({res.mirror_connections} conn)"
        else:
            delivered = "n/a (closed port)"
        rows.append(
            [
                "",
                "proxy",
                f"{median([x.proxied.rps for x in r]):.0f}",
                f"{median([x.ratio for x in r]):.2f}",
                f"{median([x.proxied.p50_ms for x in r]):.2f}",
                f"{median([x.proxied.p99_ms for x in r]):.2f}",
                f"{median([x.cpu_per_unit for x in r]):.2f}"
                f" ({median([x.system_share for x in r]):.0%} sys)",
                f"{res.peak_rss_mib:.1f}",
                delivered,
                str(sum(x.proxied.errors for x in r)),
            ]
        )
    return markdown_table(headers, rows)


def report(results: Sequence[ScenarioResult], args: argparse.Namespace, proxy: str) -> str:
    lines = [
        f"Proxy benchmark: {args.rounds} rounds x {args.duration} s per path, medians;"
        f' wrk -t{args.threads}, app = nginx `return 200 "ok"` (1 worker),'
        " raw mirror = nginx (1 worker), gor mirror = bench/sink.py.",
        "",
        *machine_lines(
            [("proxy", proxy), ("code", source_fingerprint(REPO_ROOT / "traffic_duplicator"))]
        ),
        "",
        table(results),
    ]
    notes = []
    for res in results:
        about = f"- {res.scenario.about}:"
        if res.loop:
            about += f" loop={res.loop};"
        if res.counters:
            about += " proxy's counters at exit (warm-up included): "
            about += " ".join(f"{k}={v}" for k, v in res.counters.items()) + ";"
        rss = ", ".join(f"{x.rss_mib:.1f}" for x in res.rounds)
        fds = ", ".join(str(x.fds) for x in res.rounds)
        tcp = ", ".join(f"{x.tcp_mib:.0f}" for x in res.rounds)
        notes.append(
            f"{about} after each round: RSS (MiB) {rss}; open fds {fds};"
            f" kernel TCP buffers, whole machine (MiB) {tcp}"
        )
    lines += ["", *notes]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the built-in tee proxy against the app served directly."
    )
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 5; quick 2)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 5; quick 2)")
    parser.add_argument("--quick", action="store_true", help="a smoke run, under a minute")
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the proxy")
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio"),
        default="auto",
        help="auto: uvloop when the proxy's interpreter has it; asyncio: never",
    )
    parser.add_argument(
        "--proxy",
        choices=("builtin", "nginx-mirror"),
        default="builtin",
        help="what sits between wrk and the app (nginx-mirror: the reference point)",
    )
    parser.add_argument(
        "--proxy-cmd",
        help="another proxy command, with {python} {listen} {app} {mirror} placeholders",
    )
    parser.add_argument("--profile", help="run the proxy under cProfile, writing FILE.<scenario>")
    parser.add_argument("--json", help="also write every round's numbers to this file")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.duration = args.duration or (2 if args.quick else 5)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.selected = [SCENARIOS[n] for n in names]
    return args


def run(args: argparse.Namespace) -> int:
    children = Children()
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp, cleanup_on_exit(children):
        workdir = Path(tmp)
        args.app_port, args.mirror_port = free_port(), free_port()
        app = Nginx(children, workdir, "app", SERVER_OK.format(port=args.app_port))
        http_mirror = None
        if any(s.mirror is Target.HTTP for s in args.selected):
            http_mirror = Nginx(
                children, workdir, "mirror", SERVER_OK.format(port=args.mirror_port)
            )
        bench = Bench(args, children, workdir, app, http_mirror, Wrk(children, workdir))
        proxy_text = ProxyUnderTest(args, children, workdir).describe()
        print(f"proxy: {proxy_text}", flush=True)
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
        print(report(results, args, proxy_text))
        if args.json:
            Path(args.json).write_text(
                json.dumps([asdict(r) for r in results], indent=1, default=str) + "\n"
            )
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
