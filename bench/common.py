"""Helpers shared by the benchmarks: child processes that are always cleaned up, a local
nginx, a wrk run read back as numbers, per-process CPU and memory from /proc, and the
machine description printed with every result."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

REPO_ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL for a child's process group
START_TIMEOUT = 15.0  # seconds a server may take to listen


class BenchError(Exception):
    """A problem that stops the benchmark; printed as one line."""


# ---------------------------------------------------------------------------- children


class Children:
    """Every process the benchmark starts, each in its own session so that the whole
    group (nginx master and worker, say) is stopped together, even on Ctrl-C."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        self,
        argv: Sequence[str],
        log: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        finally:
            if log is not None:
                out.close()  # type: ignore[union-attr]
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the process group, wait, then SIGKILL whatever is left."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        # The leader may be gone while a child of its group lives on: kill the group anyway.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc)


@contextlib.contextmanager
def cleanup_on_exit(children: Children) -> Iterator[None]:
    """Stop every child on return, exception, Ctrl-C, SIGTERM or SIGHUP."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python keeps that.
    caught = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, interrupt) for sig in caught}
    try:
        yield
    finally:
        # A second Ctrl-C during cleanup must not leave children behind.
        for sig in caught:
            signal.signal(sig, signal.SIG_IGN)
        try:
            children.stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def interpreter(python: str) -> str:
    """`python` as given, or absolute when it is a path: the proxy may run from another
    checkout (PATH@DIR, --source), in that directory."""
    return os.path.abspath(python) if os.sep in python else python


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], what: str, log: Path | None = None
) -> None:
    """Wait until something accepts on 127.0.0.1:port; fail early if `proc` exits."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_tail(log) if log else ""
            raise BenchError(f"{what} exited with status {proc.returncode}\n{tail}".rstrip())
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise BenchError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:.0f}s")


def require_tool(path: str, package: str) -> str:
    # nginx lives in /usr/sbin, which a non-root PATH often lacks.
    found = shutil.which(path) or shutil.which(path, path="/usr/sbin:/sbin")
    if found is None:
        raise BenchError(
            f"{path} not found: install it (apt-get install {package}, or `make bench`)"
        )
    return found


# ---------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def session_pids(session: int) -> list[int]:
    """Live processes in session `session` (a child started with start_new_session)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[3]) == session:
                pids.append(int(entry))
    return pids


def pin(session: int, cpus: set[int]) -> None:
    """Run every thread of every process in `session` on `cpus` only (sched_setaffinity)."""
    for pid in session_pids(session):
        with contextlib.suppress(OSError):  # a thread or process that just ended
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task), cpus)


def cpu_seconds(session: int) -> tuple[float, float]:
    """(user, system) CPU seconds of every live process in the session (fields 14, 15)."""
    user = system = 0
    for pid in session_pids(session):
        fields = _stat_fields(pid)
        if fields is not None:
            user += int(fields[11])
            system += int(fields[12])
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from the first line of /proc/stat."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # up to steal; guest time is already counted in user
    return total - idle, total


def machine_busy(seconds: float = 1.0) -> float:
    """Share of the machine's CPU in use (0..1) over `seconds`: others' load makes noise."""
    busy0, total0 = _cpu_times()
    time.sleep(seconds)
    busy1, total1 = _cpu_times()
    return (busy1 - busy0) / max(1, total1 - total0)


def open_fds(session: int) -> int:
    """File descriptors open in the session's processes (sockets, mostly)."""
    total = 0
    for pid in session_pids(session):
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/fd"))
    return total


def tcp_memory_mib() -> float:
    """Memory in the kernel's TCP buffers, whole machine (/proc/net/sockstat): where the
    copies a stalled target does not read end up, outside any process's RSS."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/net/sockstat").read_text().splitlines():
            if line.startswith("TCP:"):
                words = line.split()
                pages = int(words[words.index("mem") + 1])
                return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    return 0.0


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mib(session: int) -> float:
    """Sum of VmHWM (peak resident set) over the session's processes, in MiB."""
    return sum(_status_kib(pid, "VmHWM") for pid in session_pids(session)) / 1024


def rss_mib(session: int) -> float:
    """Sum of VmRSS (current resident set) over the session's processes, in MiB."""
    return sum(_status_kib(pid, "VmRSS") for pid in session_pids(session)) / 1024


# ---------------------------------------------------------------------------- nginx

NGINX_MAIN = """\
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  # The default of 1000 requests per connection would make wrk reconnect now and then.
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{status_port};
    location / {{ stub_status; }}
  }}
{servers}
}}
"""

SERVER_OK = """\
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ return 200 "ok"; }}
  }}
"""

# nginx as a mirroring reverse proxy: the reference point, not byte-exact. Its
# keep-alive pool rewrites a client's `Connection: close` and reuses app connections.
SERVER_MIRROR = """\
  upstream app {{ server 127.0.0.1:{app_port}; keepalive 64; }}
  upstream copy {{ server 127.0.0.1:{mirror_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      mirror /mirror;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://app;
    }}
    location = /mirror {{
      internal;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://copy$request_uri;
    }}
  }}
"""
# The same with proxy_pass's defaults towards the app (HTTP/1.0, `Connection: close`, no
# pool): a new app connection for every request, the work a byte-exact relay of a client's
# `Connection: close` request has to do. The copies keep their pool, like the built-in
# proxy's one gor:// connection.
_APP_KEEPALIVE = """\
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://app;
"""
SERVER_MIRROR_FRESH = SERVER_MIRROR.replace("{app_port}; keepalive 64;", "{app_port};").replace(
    _APP_KEEPALIVE, "      proxy_pass http://app;\n"
)


class Nginx:
    """One nginx (a master and ONE worker) in the foreground, configured in `workdir`,
    with a stub_status port from which the requests it served are read."""

    def __init__(self, children: Children, workdir: Path, name: str, servers: str) -> None:
        self.name = name
        self._queries = 0  # each status query is itself a request nginx counts
        self.status_port = free_port()
        self.dir = workdir / name
        self.dir.mkdir(parents=True)
        self.log = self.dir / "error.log"
        config = self.dir / "nginx.conf"
        config.write_text(
            NGINX_MAIN.format(dir=self.dir, status_port=self.status_port, servers=servers)
        )
        binary = require_tool("nginx", "nginx-light")
        self.proc = children.spawn([binary, "-p", str(self.dir), "-c", str(config)], log=self.log)
        wait_for_port(self.status_port, self.proc, f"nginx ({name})", self.log)

    @property
    def session(self) -> int:
        return self.proc.pid

    def counters(self) -> tuple[int, int]:
        """(connections accepted, requests served) so far, not counting status queries."""
        conn = http.client.HTTPConnection("127.0.0.1", self.status_port, timeout=5)
        try:
            conn.request("GET", "/")
            body = conn.getresponse().read().decode()
        finally:
            conn.close()
        # "Active connections: 1 \nserver accepts handled requests\n 5 5 9 \n..."
        accepts, _handled, requests = (int(n) for n in body.splitlines()[2].split())
        self._queries += 1
        return accepts - self._queries, requests - self._queries

    def requests(self) -> int:
        return self.counters()[1]


# ---------------------------------------------------------------------------- wrk

WRK_REPORT = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d," ..
    "\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Load:
    """One wrk load shape."""

    connections: int
    close: bool  # send `Connection: close`: one request per connection
    threads: int = 1
    cookie_bytes: int = 0  # a Cookie header this long makes requests of a realistic size


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # connect/read/write/timeout errors and non-2xx/3xx answers

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class Wrk:
    def __init__(self, children: Children, workdir: Path) -> None:
        self.binary = require_tool("wrk", "wrk")
        self.script = workdir / "report.lua"
        self.script.write_text(WRK_REPORT)
        self.children = children
        self.log = workdir / "wrk.log"

    def run(self, port: int, load: Load, seconds: int) -> WrkResult:
        argv = [
            self.binary,
            f"-t{load.threads}",
            f"-c{load.connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(self.script),
        ]
        if load.close:
            argv += ["-H", "Connection: close"]
        if load.cookie_bytes:
            argv += ["-H", "Cookie: session=" + "x" * load.cookie_bytes]
        argv.append(f"http://127.0.0.1:{port}/")
        self.log.write_bytes(b"")
        proc = self.children.spawn(argv, log=self.log)
        try:
            proc.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            raise BenchError(f"wrk did not finish: {' '.join(argv)}") from None
        finally:
            self.children.stop(proc)
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("WRKJSON "):
                data = json.loads(line[len("WRKJSON ") :])
                errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
                # wrk counts a server's close after `Connection: close` as a read error only
                # when it happens before a response, so `read` is a real failure here too.
                return WrkResult(
                    requests=data["requests"],
                    seconds=data["duration_us"] / 1e6,
                    p50_ms=data["p50_us"] / 1000,
                    p99_ms=data["p99_us"] / 1000,
                    errors=errors,
                )
        raise BenchError(f"wrk printed no result:\n{log_tail(self.log)}")


# ---------------------------------------------------------------------------- machine


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def command_output(
    argv: Sequence[str], env: dict[str, str] | None = None, stdout_only: bool = False
) -> str:
    """What `argv` printed (stdout, then stderr unless `stdout_only`), or "" if it could not
    run or took over 30 s."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, env=env, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout if stdout_only else done.stdout + done.stderr).strip()


def machine_lines(extra: Sequence[tuple[str, str]] = ()) -> list[str]:
    """A description of the machine, one `- name: value` line each, for the README."""
    memory = ""
    with contextlib.suppress(OSError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    nginx_path = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    nginx = command_output([nginx_path or "nginx", "-v"]).replace("nginx version: ", "")
    wrk = command_output(["wrk", "-v"]).splitlines()[0:1]
    items = [
        ("CPU", f"{os.cpu_count()} x {cpu_model()}{memory}"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("bench Python", sys.version.split()[0]),
        ("nginx", nginx or "?"),
        ("wrk", wrk[0].split(" [")[0] if wrk else "?"),
        *extra,
    ]
    return [f"- {name}: {value}" for name, value in items]


def read_counters(control_port: int) -> dict[str, int]:
    """bench/sink.py's counters, read over its control port."""
    with socket.create_connection(("127.0.0.1", control_port), timeout=5) as conn:
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return {k: int(v) for k, v in (item.split("=") for item in b"".join(chunks).decode().split())}


def logfmt_events(log: Path, at: str) -> list[dict[str, str]]:
    """Every logfmt line of `log` with `at=<at>`, as dicts (values unquoted)."""
    events = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        fields = dict(word.partition("=")[::2] for word in words if "=" in word)
        if fields.get("at") == at:
            events.append(fields)
    return events


def source_fingerprint(package: Path) -> str:
    """Which code was measured: the git commit, and a hash of the package's sources
    (the tree may hold uncommitted changes)."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    commit = command_output(["git", "-C", str(package), "rev-parse", "--short", "HEAD"])
    if not commit or " " in commit:
        commit = "no commit"
    return f"{commit}, sources sha256 {digest.hexdigest()[:12]}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
