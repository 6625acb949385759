"""The wrapper as a container's main process (Fir, Docker, Kubernetes): PID 1 of its own
PID namespace, the only process the runtime signals. It must deliver SIGTERM to every child
itself, drain within its budget, reap orphans, and leave nothing behind."""

from __future__ import annotations

import http.client
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import RecordingServer, running, wait_for_port, wait_until
from tests.wrapper.harness import (
    SHUTDOWN_TIMEOUT,
    WRAPPER,
    Wrapper,
    alive,
    children,
    descendants,
    engine_lines,
    established,
    example_app,
    get,
    port_block,
    running_wrapper,
    wrapper_env,
    write_options,
)
from traffic_duplicator.addr import has_ipv6


def _unshare_refusal() -> str | None:
    """Why a PID namespace cannot be made here, or None if it can."""
    if shutil.which("unshare") is None:
        return "needs unshare(1) from util-linux"
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        reason = probe.stderr.strip() or f"status {probe.returncode}"
        return f"unshare --pid --fork --mount-proc is not permitted here ({reason})"
    return None


def _wrapper_command() -> list[str]:
    """The console script, as a Dockerfile's CMD would name it (the module if not installed)."""
    script = Path(sys.executable).with_name("start-traffic-duplicator")
    return [str(script)] if script.exists() else WRAPPER


def _ns_pid(pid: int) -> int:
    """`pid`'s number inside its own (innermost) PID namespace."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError(f"no NSpid for {pid}")


@contextmanager
def in_pid_namespace(workdir: Path, port: int, app: str, **extra: str) -> Iterator[Wrapper]:
    """The wrapper as PID 1 of a new PID namespace, `app` (a shell line) behind it."""
    refusal = _unshare_refusal()
    if refusal:
        pytest.skip(refusal)
    env = wrapper_env(workdir, port, extra=extra)
    # --kill-child: if the test dies, the namespace goes with it.
    unshare = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
    argv = [*unshare, *_wrapper_command(), "sh", "-c", app]
    out, err = workdir / "wrapper.out", workdir / "wrapper.err"
    with (
        open(out, "wb") as stdout,
        open(err, "wb") as stderr,
        running(argv, env, workdir, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr) as proc,
    ):
        yield Wrapper(proc, port, workdir, out, err)


def test_as_pid_1_sigterm_to_the_wrapper_alone_drains_everything_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    port = port_block()
    with RecordingServer() as destination:
        write_options(tmp_path, f"--output-http http://127.0.0.1:{destination.port}")
        # The app's shell orphans three sleepers: they are re-parented to PID 1, the wrapper.
        app = f"for i in 1 2 3; do (sleep 0.2 &); done; exec {shlex.join(example_app())}"
        with in_pid_namespace(tmp_path, port, app) as outer:
            wait_for_port(port, 30)
            (wrapper_pid,) = children(outer.proc.pid)
            assert _ns_pid(wrapper_pid) == 1
            assert get(port, "/mirrored") == 200
            wait_until(lambda: destination.count() == 1, 15, message="nothing mirrored")
            # The orphans exit and must be reaped by PID 1: no zombie stays.
            wait_until(
                lambda: all(alive(p) for p in descendants(wrapper_pid)),
                15,
                message=f"zombies under PID 1:\n{outer.stderr()}",
            )
            pids = descendants(wrapper_pid)
            results: list[int | None] = []
            in_flight = threading.Thread(
                target=lambda: results.append(get(port, "/sleep/1.5", timeout=30))
            )
            in_flight.start()
            wait_until(lambda: established(port + 1) == 1, 15, message="not in the app")
            os.kill(wrapper_pid, signal.SIGTERM)  # what a container runtime does
            status = outer.proc.wait(SHUTDOWN_TIMEOUT + 10)
            in_flight.join(30)
    stderr = outer.stderr()
    assert status == 0, stderr
    assert results == [200], stderr
    # The wrapper delivered SIGTERM to every child itself, in order, before its deadline.
    stops = [(e["process"], e["signal"]) for e in outer.events(at="stop")]
    assert stops == [("proxy", "SIGTERM"), ("app", "SIGTERM"), ("replayer", "SIGTERM")], stderr
    assert not outer.events(at="kill"), stderr
    assert outer.events(at="phase", phase="done", status="0"), stderr
    assert engine_lines(outer, "replayer", at="stats", final="true"), stderr
    assert [p for p in pids if alive(p)] == [], stderr


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 on this host")
def test_the_proxy_listens_on_every_ipv6_and_ipv4_address(tmp_path: Path) -> None:
    # Fir routes to [::]:$PORT; Cedar to 0.0.0.0:$PORT. A dual-stack socket answers both.
    write_options(tmp_path, "--output-http http://127.0.0.1:9")
    with running_wrapper(tmp_path, example_app()) as wrapper:
        wrapper.wait_serving()
        (listening,) = engine_lines(wrapper, "proxy", at="listening")
        assert listening["address"] == f"[::]:{wrapper.port}"
        assert get(wrapper.port, "/v4") == 200
        conn = http.client.HTTPConnection("::1", wrapper.port, timeout=10)
        try:
            conn.request("GET", "/v6")
            assert conn.getresponse().status == 200
        finally:
            conn.close()
