"""The scenarios of bench/proxy.py and the paths a request can take: direct to the app,
through nginx `mirror`, through the built-in proxy on asyncio or on uvloop."""

from __future__ import annotations

import argparse
import enum
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    REPO_ROOT,
    SERVER_MIRROR,
    SERVER_MIRROR_FRESH,
    BenchError,
    Load,
    Nginx,
    command_output,
    cpu_seconds,
    free_port,
    interpreter,
    logfmt_events,
    open_fds,
    peak_rss_mib,
    rss_mib,
    wait_for_port,
)
from targets import Mirror, proxy_env


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

    @property
    def nginx_can(self) -> bool:
        """nginx `mirror` has raw HTTP copies only; for gor:// it mirrors raw HTTP."""
        return self.mirror in (Target.HTTP, Target.GOR)


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("ka32", Load(32, close=False), Target.HTTP, "32 keep-alive connections"),
        Scenario("ka1", Load(1, close=False), Target.HTTP, "1 keep-alive connection"),
        Scenario("close32", Load(32, close=True), Target.HTTP, "32 Connection: close"),
        Scenario(
            "closegor32", Load(32, close=True), Target.GOR, "32 Connection: close, gor:// hop"
        ),
        Scenario("gor32", Load(32, close=False), Target.GOR, "32 keep-alive, gor:// hop"),
        # 1 KiB requests: a target that stops reading fills the socket buffers sooner.
        Scenario(
            "stall32",
            Load(32, False, cookie_bytes=1024),
            Target.STALL,
            "32 keep-alive, 1 KiB requests, mirror stalled",
        ),
        Scenario(
            "stallgor32",
            Load(32, False, cookie_bytes=1024),
            Target.STALL_GOR,
            "32 keep-alive, 1 KiB requests, gor:// mirror stalled",
        ),
        Scenario("down32", Load(32, close=False), Target.DOWN, "32 keep-alive, mirror port closed"),
    )
}


@dataclass(frozen=True)
class PathSpec:
    """`direct`, `nginx`, `nginx-fresh`, `floor`, or the built-in proxy:
    `asyncio`/`uvloop`[:PROCESSES][@SOURCE][=PYTHON]."""

    name: str
    kind: str  # direct | nginx | nginx-fresh | floor | builtin
    loop: str = ""  # asyncio | uvloop
    processes: int = 1
    source: Path = REPO_ROOT
    python: str = ""

    @classmethod
    def parse(cls, word: str, python: str) -> PathSpec:
        name = word.strip()
        rest, _, other_python = name.partition("=")
        base, _, source = rest.partition("@")
        loop, _, count = base.partition(":")
        if "=" in name and not other_python:
            raise ValueError(f"path {word!r}: PATH=PYTHON needs an interpreter after '='")
        plain = not (count or source or other_python)
        if loop in ("direct", "nginx", "nginx-fresh") and plain:
            return cls(name, loop)
        if loop == "floor" and plain:
            return cls(name, loop, "uvloop", python=python)
        if loop not in ("asyncio", "uvloop") or (count and not count.isdigit()):
            raise ValueError(
                f"unknown path {word!r}: direct, nginx, nginx-fresh, floor,"
                " asyncio[:N][@DIR][=PYTHON], uvloop[:N][@DIR][=PYTHON]"
            )
        where = Path(source).resolve() if source else REPO_ROOT
        python = interpreter(other_python) if other_python else python
        return cls(name, "builtin", loop, int(count or 1), where, python)

    @property
    def nginx(self) -> bool:
        return self.kind in ("nginx", "nginx-fresh")

    @property
    def describe(self) -> str:
        if self.kind == "direct":
            return "wrk to the app"
        if self.kind == "nginx":
            return "nginx `mirror` + `proxy_pass`, keep-alive upstreams, 1 worker"
        if self.kind == "nginx-fresh":
            return "the same nginx, a new app connection per request (proxy_pass's default)"
        if self.kind == "floor":
            return "bench/floor.py: a bare relay on asyncio protocols, no mirror (the floor)"
        text = f"built-in on {self.loop}"
        if self.processes > 1:
            text += f", --processes {self.processes}"
        if self.source != REPO_ROOT:
            text += f", package from {self.source}"
        if "=" in self.name:
            text += f", run by {self.python}"
        return text

    def usable(self, args: argparse.Namespace) -> bool:
        if self.kind in ("builtin", "floor") and self.loop == "uvloop":
            probe = command_output([self.python, "-c", "import uvloop"])
            if probe:
                print(f"skipping path {self.name}: {self.python} cannot import uvloop")
                return False
        return True


# How the interpreter was compiled matters as much as its version: heroku/python's runtime
# archives are configured with --enable-optimizations (PGO) and --with-lto, pyenv's builds
# with neither, and the proxy's Python part runs slower on those. Distributions may
# optimise outside configure (Debian), which this probe cannot see.
_BUILD_PROBE = (
    "import sys, sysconfig; args = sysconfig.get_config_var('CONFIG_ARGS') or '';"
    " print(sys.version.split()[0], ' '.join(o for o in"
    " ('--enable-optimizations', '--with-lto') if o in args) or 'neither', sep=',')"
)


def describe_python(python: str) -> str:
    """`python`, its version, its configure optimisations and its uvloop, for the report."""
    # stdout only: a warning on stderr must not end up in the fields.
    probe = command_output([python, "-c", _BUILD_PROBE], stdout_only=True).split(",")
    version, build = (probe[0], probe[1]) if len(probe) == 2 else ("?", "?")
    probe_uvloop = command_output([python, "-c", "import uvloop; print(uvloop.__version__)"])
    uvloop = probe_uvloop if probe_uvloop and "Error" not in probe_uvloop else "not importable"
    return f"{python}, Python {version} (configured with: {build}), uvloop {uvloop}"


BUILTIN = "{python} -m traffic_duplicator.proxy -l {listen} -r {app} -d {mirror}"


@dataclass
class RunningPath:
    """One path, started for a scenario: where wrk sends, and the proxy's process."""

    spec: PathSpec
    port: int
    mirror: Mirror | None
    session: int  # 0 for direct: nothing between wrk and the app
    _stop: Callable[[], None]
    log: Path | None = None
    fds: list[int] = field(default_factory=list)

    def cpu(self) -> tuple[float, float]:
        return cpu_seconds(self.session) if self.session else (0.0, 0.0)

    def rss_mib(self) -> float:
        if not self.session:
            return 0.0
        self.fds.append(open_fds(self.session))
        return rss_mib(self.session)

    def notes(self) -> str:
        if not self.session:
            return ""
        text = f"peak RSS {peak_rss_mib(self.session):.1f} MiB, open fds {self.fds}"
        if self.mirror is not None and self.mirror.count is None:
            text += f", {self.mirror.connections()} mirror connections"
        if self.log is not None and self.spec.kind == "builtin":
            listening = logfmt_events(self.log, "listening")
            stats = logfmt_events(self.log, "stats")
            if listening:
                text += f"; loop={listening[0].get('loop', '?')}"
            if stats:
                keep = ("connections", "requests", "mirrored", "dropped", "failed")
                text += "; at exit " + " ".join(
                    f"{k}={v}" for k, v in stats[-1].items() if k in keep
                )
        return text

    def stop(self) -> None:
        self._stop()
        if self.mirror is not None:
            self.mirror.stop()


def start_path(
    bench: Any, spec: PathSpec, mirror: Mirror | None, label: str, extra: Sequence[str] = ()
) -> RunningPath:
    """Start what the path needs (nothing for direct) and wait until it listens; `extra`
    words go at the end of the built-in proxy's command line."""
    args, children, workdir = bench.args, bench.children, bench.workdir
    if spec.kind == "direct":
        return RunningPath(spec, args.app_port, None, 0, lambda: None)
    if spec.kind == "floor":
        return _start_floor(bench, spec, label)
    assert mirror is not None
    listen = free_port()
    if spec.nginx:
        mirror_port = mirror.target.rsplit(":", 1)[1]
        config = SERVER_MIRROR if spec.kind == "nginx" else SERVER_MIRROR_FRESH
        server = config.format(port=listen, app_port=args.app_port, mirror_port=mirror_port)
        nginx = Nginx(children, workdir, f"proxy-{label}-{listen}", server)
        return RunningPath(spec, listen, mirror, nginx.session, lambda: children.stop(nginx.proc))
    argv = [
        word.format(
            python=spec.python,
            listen=listen,
            app=f"127.0.0.1:{args.app_port}",
            mirror=mirror.target,
        )
        for word in shlex.split(BUILTIN)
    ]
    if spec.processes > 1:
        argv += ["--processes", str(spec.processes)]
    argv += extra
    log = workdir / f"proxy-{label}-{spec.name.replace('/', '_')}.log"
    env = proxy_env("asyncio" if spec.loop == "asyncio" else "auto", spec.source)
    # From the source checkout: `python -m` puts the working directory first on the path.
    proc = children.spawn(argv, log=log, env=env, cwd=spec.source)
    wait_for_port(listen, proc, f"the proxy ({spec.name})", log)
    time.sleep(0.2 * spec.processes)  # every worker listening
    if spec.loop == "uvloop" and "loop=uvloop" not in log.read_text(errors="replace"):
        raise BenchError(f"path {spec.name}: the proxy did not start on uvloop ({log})")
    return RunningPath(spec, listen, mirror, proc.pid, lambda: children.stop(proc), log=log)


def _start_floor(bench: Any, spec: PathSpec, label: str) -> RunningPath:
    """bench/floor.py in front of the app, on uvloop; it mirrors nothing."""
    listen = free_port()
    argv = [spec.python, str(REPO_ROOT / "bench" / "floor.py"), str(listen)]
    argv.append(f"127.0.0.1:{bench.args.app_port}")
    log = bench.workdir / f"floor-{label}.log"
    proc = bench.children.spawn(argv, log=log)
    wait_for_port(listen, proc, "the floor relay", log)
    if "loop=uvloop" not in log.read_text(errors="replace"):
        raise BenchError(f"path floor: the relay did not start on uvloop ({log})")
    return RunningPath(spec, listen, None, proc.pid, lambda: bench.children.stop(proc), log=log)
