"""What the benchmarks put around a proxy: its mirror targets and its environment."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from common import REPO_ROOT, Children, free_port, read_counters, wait_for_port

BENCH_DIR = Path(__file__).resolve().parent


def proxy_env(loop: str = "auto", source: Path = REPO_ROOT) -> dict[str, str]:
    """The built-in proxy's environment: the package from `source` (this checkout by
    default) importable; `asyncio`: no uvloop."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
    if loop == "asyncio":
        env["TRAFFIC_DUPLICATOR_UVLOOP"] = "0"
    else:
        env.pop("TRAFFIC_DUPLICATOR_UVLOOP", None)
    return env


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
    """bench/sink.py: counts gor messages, or never reads (`stall`), raw or gor:// framed."""

    def __init__(
        self, children: Children, workdir: Path, *, gor: bool, stall: bool = False
    ) -> None:
        mode = "stall" if stall else "gor"
        port, self.control = free_port(), free_port()
        log = workdir / f"sink-{mode}-{port}.log"
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        argv = [sys.executable, str(BENCH_DIR / "sink.py"), "--port", str(port)]
        argv += ["--control-port", str(self.control), "--mode", mode]
        proc = children.spawn(argv, log=log, env=env)
        wait_for_port(self.control, proc, f"sink ({mode})", log)
        target = f"gor://127.0.0.1:{port}" if gor else f"127.0.0.1:{port}"
        counts = None if stall else (lambda: read_counters(self.control)["messages"])
        super().__init__(target, counts, lambda: children.stop(proc))

    def connections(self) -> int | None:
        return read_counters(self.control)["connections"]
