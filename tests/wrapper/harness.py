"""Running `start-traffic-duplicator` for real in tests: its environment, logs and processes."""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import REPO_ROOT, python_env, stop_group, wait_until

FIXTURE_BIN = REPO_ROOT / "tests" / "fixtures" / "bin"
EXAMPLE_APP = REPO_ROOT / "examples" / "app.py"
WRAPPER = [sys.executable, "-m", "traffic_duplicator"]
# Short enough for tests; the defaults (25 s, 1 s) are the production values.
SHUTDOWN_TIMEOUT = 5.0
BACKOFF_BASE = 0.2
LOG_PREFIX = "traffic_duplicator "


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_block(count: int = 3) -> int:
    """A base port with `count` free ports after it, below the ephemeral range.

    Outgoing connections (thousands, on a machine running several test suites) take their
    local ports from the ephemeral range, and one of them on PORT+1 would make the app's
    bind fail; so the wrapper's ports come from below it. Each port is bound without
    SO_REUSEADDR, which also refuses a port that still has connections in TIME_WAIT.
    """
    high = _ephemeral_low() - count
    for _ in range(500):
        base = random.randrange(20000, high)
        try:
            for offset in range(count):
                with socket.socket() as probe:
                    probe.bind(("0.0.0.0", base + offset))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        return base
    raise RuntimeError("no block of free ports below the ephemeral range")


def example_app(port_word: str = "$PORT") -> list[str]:
    return [sys.executable, str(EXAMPLE_APP), port_word]


def parse_logfmt(line: str) -> dict[str, str]:
    """Fields of one of our logfmt lines (quoting as logs.logfmt writes it)."""
    fields: dict[str, str] = {}
    for word in shlex.split(line):
        key, _, value = word.partition("=")
        fields[key] = value
    return fields


@dataclass
class Wrapper:
    """A running wrapper: its process, ports, and the files its output goes to."""

    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    stdout_path: Path
    stderr_path: Path
    seen_pids: set[int] = field(default_factory=set)

    @property
    def app_port(self) -> int:
        return self.port + 1

    @property
    def replayer_port(self) -> int:
        return self.port + 2

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def events(self, **match: str) -> list[dict[str, str]]:
        """Our own event lines whose fields include every `match` item."""
        found = []
        for line in self.stderr().splitlines():
            if not line.startswith(LOG_PREFIX):
                continue
            fields = parse_logfmt(line[len(LOG_PREFIX) :])
            if all(fields.get(k) == v for k, v in match.items()):
                found.append(fields)
        return found

    def wait_event(self, timeout: float = 15.0, count: int = 1, **match: str) -> dict[str, str]:
        wait_until(
            lambda: len(self.events(**match)) >= count or self.proc.poll() is not None,
            timeout,
            message=f"no event {match} (x{count}) within {timeout}s:\n{self.stderr()}",
        )
        events = self.events(**match)
        assert len(events) >= count, f"wrapper exited without {match}:\n{self.stderr()}"
        return events[count - 1]

    def pid_of(self, process: str) -> int:
        """The pid of the last start of `process`."""
        pid = int(self.events(at="start", process=process)[-1]["pid"])
        self.seen_pids.add(pid)
        return pid

    def wait_serving(self, timeout: float = 20.0) -> None:
        """Until the proxy is started and accepts on $PORT."""
        self.wait_event(timeout, at="phase", phase="serving")
        wait_until(
            lambda: get(self.port, "/", timeout=1.0) is not None,
            timeout,
            message=f"$PORT never answered:\n{self.stderr()}",
        )
        for name in ("app", "replayer", "proxy"):
            self.pid_of(name)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"wrapper still running after {timeout}s:\n{self.stderr()}"
            ) from None

    def all_pids(self) -> set[int]:
        for fields in self.events(at="start"):
            self.seen_pids.add(int(fields["pid"]))
        return self.seen_pids


def get(port: int, path: str, timeout: float = 5.0) -> int | None:
    """The status of a GET on 127.0.0.1:port, or None if it failed."""
    return request(port, "GET", path, timeout=timeout)


def request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 5.0
) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _parents() -> dict[int, list[int]]:
    """Every process's children (zombies included), from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def children(pid: int) -> list[int]:
    return _parents().get(pid, [])


def descendants(pid: int) -> list[int]:
    """Every descendant of `pid` (zombies included), from /proc."""
    tree = _parents()
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in tree.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def assert_nothing_left(wrapper: Wrapper) -> None:
    """No process the wrapper started, nor any member of their groups, is still running."""
    left = [pid for pid in wrapper.all_pids() if alive(pid) or group_alive(pid)]
    assert not left, f"processes left behind: {left}\n{wrapper.stderr()}"


def write_options(workdir: Path, *lines: str) -> Path:
    path = workdir / "config" / "gor.options"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def wrapper_env(
    workdir: Path,
    port: int,
    *,
    fixtures_on_path: bool = False,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The wrapper's environment: this checkout importable, short timeouts, nothing inherited
    from TRAFFIC_DUPLICATOR_* of the machine running the tests; `extra` wins over all."""
    env = {k: v for k, v in python_env().items() if not k.startswith("TRAFFIC_DUPLICATOR_")}
    env.update(
        PORT=str(port),
        TRAFFIC_DUPLICATOR_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT),
        TRAFFIC_DUPLICATOR_RESTART_BACKOFF_BASE=str(BACKOFF_BASE),
        # Never pick up a gor from this checkout's vendor/ directory.
        TRAFFIC_DUPLICATOR_HOME=str(workdir / "buildpack"),
        FAKE_ENGINE_PYTHON=sys.executable,
        FAKE_ENGINE_LOG_DIR=str(workdir),
        EXAMPLE_APP_QUIET="1",
    )
    if fixtures_on_path:
        env["PATH"] = f"{FIXTURE_BIN}{os.pathsep}{env['PATH']}"
    env.update(extra or {})
    return env


@contextlib.contextmanager
def running_wrapper(
    workdir: Path,
    command: Sequence[str],
    *,
    port: int | None = None,
    env: dict[str, str] | None = None,
    fixtures_on_path: bool = False,
    extra: Mapping[str, str] | None = None,
    **env_extra: str,
) -> Iterator[Wrapper]:
    """Start the wrapper in `workdir` (its own session); on exit stop it and everything it left."""
    port = port if port is not None else port_block()
    if env is None:
        env = wrapper_env(
            workdir, port, fixtures_on_path=fixtures_on_path, extra={**env_extra, **(extra or {})}
        )
    environment = env
    stdout_path, stderr_path = workdir / "wrapper.out", workdir / "wrapper.err"
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [*WRAPPER, *command],
            env=environment,
            cwd=workdir,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    wrapper = Wrapper(proc, port, workdir, stdout_path, stderr_path)
    try:
        yield wrapper
    finally:
        pids = wrapper.all_pids() if stderr_path.exists() else set()
        stop_group(proc, SHUTDOWN_TIMEOUT + 3)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def run_wrapper(
    workdir: Path,
    command: Sequence[str],
    *,
    timeout: float = 20.0,
    unset: Sequence[str] = (),
    fixtures_on_path: bool = False,
    extra: Mapping[str, str] | None = None,
    **env_extra: str,
) -> subprocess.CompletedProcess[str]:
    """Run the wrapper to completion (for the bad-input cases, which exit at once)."""
    port = int(env_extra.pop("PORT")) if env_extra.get("PORT", "").isdigit() else port_block()
    env = wrapper_env(
        workdir, port, fixtures_on_path=fixtures_on_path, extra={**env_extra, **(extra or {})}
    )
    for name in unset:
        env.pop(name, None)
    return subprocess.run(
        [*WRAPPER, *command],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        start_new_session=True,
    )


def established(port: int) -> int:
    """How many TCP connections to a local `port` are established right now (/proc/net)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                count += 1
    return count


def engine_lines(wrapper: Wrapper, process: str, **match: str) -> list[dict[str, str]]:
    """An engine's own logfmt lines (`process | at=...`) whose fields include every `match`."""
    prefix = f"{process} | "
    found = []
    for line in wrapper.stderr().splitlines():
        if line.startswith(prefix):
            fields = parse_logfmt(line[len(prefix) :])
            if all(fields.get(k) == v for k, v in match.items()):
                found.append(fields)
    return found
