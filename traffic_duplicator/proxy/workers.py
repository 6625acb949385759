"""`--processes N`: N proxy processes on one port, which the wrapper sees as one.

The first process binds N sockets to the port with SO_REUSEPORT, keeps one and starts N-1
workers, each `python -m traffic_duplicator.proxy <the same settings> --worker-fds S,C`
with its socket S and the read end C of a control pipe. The kernel spreads new
connections over the sockets (by a hash of the addresses). Each process relays and
mirrors on its own, with its own mirror connections and buffers: N times the memory cap
and N times the connections to each target.

Signals: Heroku sends SIGTERM to every process of the dyno, a terminal sends SIGINT to
the whole group, and the wrapper may signal the first process alone. Workers ignore both;
the first process writes one byte on each control pipe per signal it gets, so a worker
drains at the first and hurries at the second, exactly as the first process does. A worker
whose pipe ends (the first process died) drains too.

While the first process serves, a worker that exits is restarted after RESTART_DELAY on a
new socket (the connections queued on the old one were reset by the kernel). After its own
shutdown the first process waits for the workers, then kills those still running after
their drain timeout and a margin; it exits non-zero if a worker did not exit cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass

from traffic_duplicator import loops
from traffic_duplicator.logs import EventLog
from traffic_duplicator.proxy.config import ProxyConfig
from traffic_duplicator.proxy.server import MIRROR_FLUSH_TIMEOUT, ProxyServer, bind
from traffic_duplicator.signals import SHUTDOWN_SIGNALS, ShutdownSignals

RESTART_DELAY = 1.0
POLL_INTERVAL = 0.2
# After the first process's own shutdown, workers get their drain and flush and this.
EXIT_MARGIN = MIRROR_FLUSH_TIMEOUT + 3.0
# One byte per signal on a control pipe; the worker logs the signal's name.
CODES = {"SIGTERM": b"T", "SIGINT": b"I"}
NAMES = {code[0]: name for name, code in CODES.items()}


def worker_argv(config: ProxyConfig, sock_fd: int, control_fd: int) -> list[str]:
    """The command line of a worker: the first process's settings, and its two fds."""
    argv = [sys.executable, "-m", "traffic_duplicator.proxy"]
    argv += ["-l", str(config.listen), "-r", str(config.relay)]
    for target in config.targets:
        argv += ["-d", str(target)]
    argv += ["--mirror-buffer", str(config.mirror.buffer_bytes)]
    argv += ["--mirror-connections", str(config.mirror.connections)]
    argv += ["--drain-timeout", repr(config.drain_timeout)]
    argv += ["--stats-interval", repr(config.stats_interval)]
    argv += ["--processes", "1", "--worker-fds", f"{sock_fd},{control_fd}"]
    if config.verbose:
        argv.append("-v")
    return argv


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes]
    control: int  # the write end of its control pipe

    def tell(self, signal_name: str) -> None:
        with contextlib.suppress(OSError):  # it exited: nothing to tell
            os.write(self.control, CODES.get(signal_name, b"T"))


class Group:
    """The first process's view of its workers: start, relay signals, restart, reap."""

    def __init__(self, config: ProxyConfig, log: EventLog) -> None:
        self.config = config
        self.log = log
        self.workers: dict[int, Worker] = {}
        self.failed = False

    def start(self, index: int, sock: socket.socket) -> None:
        read_end, write_end = os.pipe()
        try:
            proc = subprocess.Popen(
                worker_argv(self.config, sock.fileno(), read_end),
                pass_fds=(sock.fileno(), read_end),
                stdin=subprocess.DEVNULL,
            )
        except OSError:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
            sock.close()  # the worker has its own copy
        self.workers[index] = Worker(index, proc, write_end)
        self.log.event(at="worker_start", worker=index, pid=proc.pid)

    def tell_all(self, signal_name: str) -> None:
        for worker in self.workers.values():
            worker.tell(signal_name)

    def reap(self) -> list[int]:
        """Forget workers that exited; their indexes."""
        gone = []
        for index, worker in list(self.workers.items()):
            status = worker.proc.poll()
            if status is not None:
                os.close(worker.control)
                del self.workers[index]
                gone.append(index)
                self.failed = self.failed or status != 0
                self.log.event(at="worker_exit", worker=index, pid=worker.proc.pid, status=status)
        return gone

    async def supervise(self, signals: ShutdownSignals) -> None:
        """Relay signals to the workers; restart those that exit before the shutdown."""
        loop = asyncio.get_running_loop()
        restart_at: dict[int, float] = {}
        told = 0
        while True:
            for name in signals.received[told:]:
                self.tell_all(name)
            told = len(signals.received)
            if not signals.stop.is_set():
                for index in self.reap():
                    restart_at[index] = loop.time() + RESTART_DELAY
                for index, when in list(restart_at.items()):
                    if loop.time() >= when:
                        del restart_at[index]
                        try:
                            self.start(index, bind(self.config, reuse_port=True))
                        except Exception as exc:  # a bind or spawn error: retry later
                            self.log.event(at="worker_error", worker=index, error=str(exc))
                            restart_at[index] = loop.time() + RESTART_DELAY
            if told >= 2:
                return  # both signals relayed; the rest is the shutdown's
            await asyncio.sleep(POLL_INTERVAL)

    async def wait(self, timeout: float) -> None:
        """Wait for every worker to exit, up to `timeout`; kill what is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.workers and loop.time() < deadline:
            self.reap()
            await asyncio.sleep(0.05)
        for worker in list(self.workers.values()):
            self.log.event(at="worker_killed", worker=worker.index, pid=worker.proc.pid)
            with contextlib.suppress(OSError):
                worker.proc.kill()
            worker.proc.wait()
            self.failed = True
        self.reap()


def run_group(config: ProxyConfig, log: EventLog) -> int:
    """The first process of `config.processes`: bind them all, start the workers, serve."""
    # A plain bind first: with SO_REUSEPORT alone, a port already held by another
    # SO_REUSEPORT listener of this user would be shared instead of refused.
    bind(config).close()
    sockets = [bind(config, reuse_port=True) for _ in range(config.processes)]
    group = Group(config, log)
    try:
        for index, sock in enumerate(sockets[1:], start=1):
            group.start(index, sock)
        status = loops.run(_serve_first(config, log, sockets[0], group))
    finally:
        for worker in group.workers.values():  # only after an error: kill, not orphan
            with contextlib.suppress(OSError):
                worker.proc.kill()
    return 1 if group.failed and status == 0 else status


async def _serve_first(
    config: ProxyConfig, log: EventLog, sock: socket.socket, group: Group
) -> int:
    loop = asyncio.get_running_loop()
    signals = ShutdownSignals()
    signals.install(loop)
    supervisor = loop.create_task(group.supervise(signals), name="proxy-workers")
    status = await ProxyServer(config, log, loop).serve(sock, signals)
    await group.wait(config.drain_timeout + EXIT_MARGIN)
    supervisor.cancel()
    return status


def run_worker(config: ProxyConfig, log: EventLog, fds: str) -> int:
    """A worker: serve on the inherited socket until the first process says stop."""
    sock_fd, control_fd = (int(fd) for fd in fds.split(","))
    for sig in SHUTDOWN_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    sock = socket.socket(fileno=sock_fd)
    sock.setblocking(False)
    os.set_blocking(control_fd, False)
    return loops.run(_serve_worker(config, log, sock, control_fd))


async def _serve_worker(
    config: ProxyConfig, log: EventLog, sock: socket.socket, control_fd: int
) -> int:
    loop = asyncio.get_running_loop()
    signals = ShutdownSignals()

    def on_control() -> None:
        try:
            data = os.read(control_fd, 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the first process is gone: drain and exit
            loop.remove_reader(control_fd)
            if not signals.stop.is_set():
                signals.record("parent_exit")
            return
        for code in data:
            signals.record(NAMES.get(code, "SIGTERM"))

    loop.add_reader(control_fd, on_control)
    try:
        return await ProxyServer(config, log, loop).serve(sock, signals)
    finally:
        loop.remove_reader(control_fd)
        os.close(control_fd)
