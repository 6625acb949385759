"""The listener, the periodic counters and the shutdown sequence."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import os
import select
import socket
from typing import TYPE_CHECKING, Any, Protocol

from traffic_duplicator import loops
from traffic_duplicator.addr import DEFAULT_BACKLOG, Address, listen_socket
from traffic_duplicator.errors import UserError
from traffic_duplicator.logs import EventLog, RateLimitedLog
from traffic_duplicator.proxy.config import ProxyConfig, TargetKind, TargetSpec
from traffic_duplicator.proxy.counters import RelayCounters, stats_lines
from traffic_duplicator.proxy.mirror import MirrorTarget
from traffic_duplicator.proxy.pair import RelayContext
from traffic_duplicator.proxy.relay import ClientSide
from traffic_duplicator.proxy.track import Comparison, TrackedTarget
from traffic_duplicator.signals import ShutdownSignals

if TYPE_CHECKING:
    from traffic_duplicator.proxy.poller import Poller

# After the relays are done, mirrors get this long to send what they still hold.
MIRROR_FLUSH_TIMEOUT = 2.0
MIRROR_FLUSH_POLL = 0.02
ERROR_LOG_INTERVAL = 5.0
# The cyclic garbage collector's thresholds while serving (gc.set_threshold): a
# young-generation pass every this many container allocations, not CPython's 700 (3.10)
# or 2,000 (3.13). See ProxyServer.serve.
GC_THRESHOLDS = (50_000, 20, 20)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve(address: Address) -> str:
    """An IP literal for `address`, looked up once at start so no connect waits on DNS.

    If the name does not resolve now, it is kept and looked up at each connection.
    """
    if _is_ip(address.host):
        return address.host
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except OSError:
        return address.host
    return str(infos[0][4][0]) if infos else address.host


def _target_class(spec: TargetSpec, config: ProxyConfig) -> type[MirrorTarget]:
    """gor:// targets carry production's responses too with --compare (see `track`)."""
    return TrackedTarget if config.compare and spec.kind is TargetKind.GOR else MirrorTarget


class Acceptor(Protocol):
    """What accepts the clients: the epoll core's Listener or asyncio's Server."""

    def close(self) -> None: ...


class ProxyServer:
    """Accepts client connections and runs until a signal, then shuts down in order."""

    def __init__(self, config: ProxyConfig, log: EventLog, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.log = log
        self.counters = RelayCounters()
        errors = RateLimitedLog(log, ERROR_LOG_INTERVAL)
        self.targets = tuple(
            _target_class(spec, config)(
                spec,
                config.mirror,
                host=resolve(spec.address),
                errors=errors,
                log=log,
                verbose=config.verbose,
            )
            for spec in config.targets
        )
        self.context = RelayContext(
            loop=loop,
            app_host=resolve(config.relay),
            app_port=config.relay.port,
            targets=self.targets,
            counters=self.counters,
            errors=errors,
            log=log,
            verbose=config.verbose,
            compare=(
                Comparison(self.targets, config.compare_body_limit, self.counters, errors)
                if config.compare
                else None
            ),
        )

    def log_stats(self) -> None:
        targets = [(target.name, target.counters) for target in self.targets]
        for fields in stats_lines("stats", self.counters, targets):
            self.log.event(**fields)

    async def _stats_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.log_stats()

    async def serve(self, sock: socket.socket, signals: ShutdownSignals | None = None) -> int:
        """Serve until a signal; `signals`: already wired (a worker's, by its parent)."""
        loop = asyncio.get_running_loop()
        if signals is None:
            signals = ShutdownSignals()
            signals.install(loop)
        host, port = sock.getsockname()[:2]
        poller, server = await self._accept(sock)
        self.log.event(
            at="listening",
            address=f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            relay=str(self.config.relay),
            duplex=",".join(target.name for target in self.targets) or None,
            loop=loops.running_loop_name(),
            core="protocols" if poller is None else "epoll",
            pid=os.getpid(),
        )
        # Everything allocated so far lives as long as the process: keep it out of the
        # cyclic collector's way (CPython's gc.freeze, as used by pre-forking servers).
        gc.freeze()
        # A connection's objects are freed by reference counting (the relay forms no
        # cycles), so frequent young-generation passes find almost nothing to collect;
        # they cost about 4.6 % of a `Connection: close` request's CPU (bench/README.md).
        # Rarer passes still bound the cyclic garbage a bug could leave.
        gc.set_threshold(*GC_THRESHOLDS)
        stats: asyncio.Task[Any] | None = None
        if self.config.stats_interval > 0:
            stats = loop.create_task(
                self._stats_loop(self.config.stats_interval), name="proxy-stats"
            )
        await signals.stop.wait()
        if stats is not None:
            stats.cancel()
        await self._shutdown(server, signals)
        if poller is not None:
            poller.close()
        return 0

    def use_epoll(self) -> bool:
        """The epoll core: asked for, on Linux, and the app's address known (a name that
        did not resolve at start is looked up per connection, by asyncio)."""
        return self.config.epoll and hasattr(select, "epoll") and _is_ip(self.context.app_host)

    async def _accept(self, sock: socket.socket) -> tuple[Poller | None, Acceptor]:
        """Start accepting on `sock` with the core in use; its poller (None: protocols)."""
        if self.use_epoll():
            from traffic_duplicator.proxy.poller import Listener, Poller

            poller = Poller(self.context)
            return poller, Listener(sock, poller)
        server = await self.context.loop.create_server(
            lambda: ClientSide(self.context), sock=sock, backlog=DEFAULT_BACKLOG
        )
        return None, server

    async def _shutdown(self, server: Acceptor, signals: ShutdownSignals) -> None:
        """Stop accepting, drain the connections, flush the mirrors, log the counters."""
        context = self.context
        self.log.event(at="shutdown", signal=signals.received[0], open=len(context.relays))
        # 1. No new connections; the listening socket closes.
        server.close()
        # 2. Idle keep-alive connections close now; the others after their last response.
        context.drain()
        # 3. Wait for those, up to the drain timeout (a second signal cuts it short).
        await signals.finish(context.all_closed.wait(), self.config.drain_timeout)
        cut = len(context.relays)
        for relay in list(context.relays):
            relay.abort()
        # 4. Mirrors send what they hold, briefly, then close.
        for _ in range(round(MIRROR_FLUSH_TIMEOUT / MIRROR_FLUSH_POLL)):
            if all(target.flushed for target in self.targets):
                break
            await asyncio.sleep(MIRROR_FLUSH_POLL)
        for target in self.targets:
            target.close()
        await asyncio.sleep(0)  # let the closes run before the loop stops
        # 5. The last counters.
        self.log_stats()
        self.log.event(at="exit", status=0, cut=cut)


class ListenError(UserError):
    """The listening port cannot be bound for another reason than being in use."""


def bind(config: ProxyConfig, *, reuse_port: bool = False) -> socket.socket:
    """The listening socket; a port in use raises PortInUseError before anything starts.

    TCP_NODELAY is set once here: accepted sockets inherit it (Linux), and asyncio's
    transports do not set it on them (their protocol number is 0), so without it a
    response relayed in several writes could wait for the client's delayed ACK.
    """
    try:
        sock = listen_socket(config.listen.port, config.listen.host, reuse_port=reuse_port)
    except OSError as exc:  # e.g. a port below 1024 without the privilege
        raise ListenError(f"cannot listen on port {config.listen.port}: {exc.strerror}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def run(config: ProxyConfig, log: EventLog) -> int:
    """Bind, then serve; with --processes N, as the first of N processes (workers.py)."""
    if config.processes > 1:
        from traffic_duplicator.proxy.workers import run_group

        return run_group(config, log)
    return loops.run(_serve(config, log, bind(config)))


async def _serve(config: ProxyConfig, log: EventLog, sock: socket.socket) -> int:
    return await ProxyServer(config, log, asyncio.get_running_loop()).serve(sock)
