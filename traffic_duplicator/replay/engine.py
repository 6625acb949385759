"""The replayer's wiring: inputs -> filters and rewrites -> outputs, stats, and shutdown."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
from collections.abc import Callable
from typing import Any, Protocol

from traffic_duplicator.addr import listen_socket
from traffic_duplicator.compare import CompareSettings
from traffic_duplicator.logs import EventLog
from traffic_duplicator.options import Limit
from traffic_duplicator.replay.config import InputConfig, InputKind, ReplayConfig
from traffic_duplicator.replay.inputs import (
    HttpInputProtocol,
    Intake,
    TcpInputProtocol,
    capture_paths,
    replay_file,
)
from traffic_duplicator.replay.limits import Limiter
from traffic_duplicator.replay.modifier import Modifier, Verdict
from traffic_duplicator.replay.output_http import HttpOutput
from traffic_duplicator.replay.output_stream import NullOutput, StreamOutput
from traffic_duplicator.replay.request import Request
from traffic_duplicator.replay.shadow import TICK_INTERVAL, CompareHub, request_target
from traffic_duplicator.replay.stats import InputStats, OutputStats
from traffic_duplicator.signals import Ending, ShutdownSignals


class Output(Protocol):
    name: str
    stats: OutputStats

    def offer(self, request: Request) -> None: ...

    @property
    def pending(self) -> int: ...

    async def drain(self) -> None: ...

    def close(self) -> int: ...


class Engine:
    """Runs one replayer until a signal, --exit-after, or the end of its file inputs.

    With `compare` settings that are enabled, responses are compared (replay/shadow.py).
    """

    def __init__(
        self,
        config: ReplayConfig,
        log: EventLog | None = None,
        compare: CompareSettings | None = None,
    ) -> None:
        self.config = config
        self.log = log or EventLog(None)
        self.modifier = Modifier(config.modifier)
        self.input_stats = InputStats()
        self.outputs: list[Output] = []
        self._next = 0
        self.signals = ShutdownSignals()
        self._compare = compare if compare is not None and compare.enabled else None
        self.hub: CompareHub | None = None

    def submit(self, request: Request) -> None:
        """Hand one request to the outputs: every output, or the next one with --split-output."""
        result = self.modifier.apply(request) if self.modifier.active else request
        if isinstance(result, Verdict):
            self.input_stats.filtered += 1
            return
        if result is not request and self.hub is not None:
            result.original_target = request_target(request.head)  # the route production saw
        outputs = self.outputs
        if self.config.split and len(outputs) > 1:
            outputs[self._next].offer(result)
            self._next = (self._next + 1) % len(outputs)
        else:
            for output in outputs:
                output.offer(result)

    def _limited(self, limit: Limit | None) -> Callable[[Request], None]:
        """`submit`, behind an input's `|N` or `|N%` limit if it has one."""
        if limit is None:
            return self.submit
        limiter = Limiter(limit)

        def submit(request: Request) -> None:
            if limiter.allow():
                self.submit(request)
            else:
                self.input_stats.filtered += 1

        return submit

    def _open_outputs(self) -> None:
        config = self.config
        controls_host = config.modifier.controls_host
        http = [HttpOutput(c, controls_host, self.log, config.verbose) for c in config.http_outputs]
        streams = [StreamOutput.file(path, config.file_flush) for path in config.files]
        if config.stdout:
            streams.append(StreamOutput.stdout())
        self.outputs += [*http, *streams]
        if config.null:
            self.outputs.append(NullOutput())
        if self._compare is not None:
            split = config.split and len(self.outputs) > 1
            self.hub = CompareHub.for_outputs(self._compare, http, split, self.log)
            for stream in streams:
                self.hub.add_stream(stream)

    def _intake(self, submit: Callable[[Request], None]) -> Intake:
        """Where an --input-tcp or --input-file hands its messages."""
        hub = self.hub
        return Intake(submit, self.input_stats, hub.production if hub is not None else None)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        config = self.config
        signals = self.signals
        conns: set[HttpInputProtocol | TcpInputProtocol] = set()
        servers: list[asyncio.base_events.Server] = []
        sockets: list[tuple[InputConfig, socket.socket]] = []
        # Bind and open the captures first: a port in use or a missing capture must fail
        # before anything else starts.
        captures: list[tuple[InputConfig, list[str]]] = []
        for spec in config.inputs:
            if spec.listen is not None:
                address = spec.listen.address
                sockets.append((spec, listen_socket(address.port, address.host)))
            elif spec.file is not None:
                captures.append((spec, capture_paths(spec.file.path)))
        self._open_outputs()
        stats = self.input_stats
        limit = config.max_request_bytes
        for spec, sock in sockets:
            assert spec.listen is not None
            submit = self._limited(spec.listen.limit)
            factory: Callable[[], asyncio.Protocol] = (
                functools.partial(HttpInputProtocol, submit, stats, limit, conns)
                if spec.kind is InputKind.HTTP
                else functools.partial(TcpInputProtocol, self._intake(submit), limit, conns)
            )
            servers.append(await loop.create_server(factory, sock=sock))
        file_tasks = [
            loop.create_task(
                replay_file(spec, paths, self._intake(self.submit), self.log),
                name=f"input-file-{i}",
            )
            for i, (spec, paths) in enumerate(captures)
        ]
        signals.install(loop)
        self._log_start(sockets)
        stats_task = loop.create_task(self._report(), name="stats") if config.stats else None
        compare_task = loop.create_task(self._compare_ticks(), name="compare") if self.hub else None
        exit_timer = (
            loop.call_later(config.exit_after, signals.request_stop)
            if config.exit_after > 0
            else None
        )
        waiters: list[asyncio.Future[Any]] = [loop.create_task(signals.stop.wait(), name="stop")]
        if file_tasks and not servers:
            waiters.append(loop.create_task(_all(file_tasks), name="inputs-done"))
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        if exit_timer is not None:
            exit_timer.cancel()
        if signals.received:
            self.log.event(at="signal", signal=signals.received[0], action="flush")
        await self._shutdown(servers, conns, file_tasks)
        for task in (stats_task, compare_task):
            if task is not None:
                task.cancel()
        return 0

    def _log_start(self, sockets: list[tuple[InputConfig, socket.socket]]) -> None:
        for spec, sock in sockets:
            host, port = sock.getsockname()[:2]
            self.log.event(
                at="start",
                process="replayer",
                pid=os.getpid(),
                input=spec.kind.value,
                port=port,
                host=host,
                outputs=len(self.outputs),
            )
        for spec in self.config.inputs:
            if spec.file is not None:
                self.log.event(
                    at="start",
                    process="replayer",
                    pid=os.getpid(),
                    input="file",
                    path=spec.file.path,
                )

    async def _shutdown(
        self,
        servers: list[asyncio.base_events.Server],
        conns: set[HttpInputProtocol | TcpInputProtocol],
        file_tasks: list[asyncio.Task[None]],
    ) -> None:
        # 1. Stop accepting, and close input connections so no new request arrives.
        for server in servers:
            server.close()
        for conn in list(conns):
            conn.close()
        for task in file_tasks:
            task.cancel()
        await asyncio.gather(*file_tasks, return_exceptions=True)
        # 2. Give queued requests up to the flush timeout (a second signal cuts it short).
        pending = sum(o.pending for o in self.outputs)
        self.log.event(at="flush", pending=pending, timeout=self.config.flush_timeout)
        drain = asyncio.gather(*(o.drain() for o in self.outputs))
        if await self.signals.finish(drain, self.config.flush_timeout) is Ending.HURRIED:
            self.log.event(at="signal", signal=self.signals.signal_name(1), action="abandon")
        # 3. Close outputs; whatever is still queued or in flight is abandoned, and said so.
        abandoned = sum(o.close() for o in self.outputs)
        if self.hub is not None:
            self.hub.close()
        self.report(final=True)
        self.log.event(at="stop", process="replayer", abandoned=abandoned, status=0)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval)
            self.report()

    async def _compare_ticks(self) -> None:
        assert self.hub is not None
        while True:
            await asyncio.sleep(TICK_INTERVAL)
            self.hub.tick()

    def report(self, final: bool = False) -> None:
        extra = {"final": True} if final else {}
        if self.config.inputs:
            kinds = ",".join(sorted({spec.kind.value for spec in self.config.inputs}))
            self.log.event(at="stats", **extra, input=kinds, **self.input_stats.fields())
        for output in self.outputs:
            self.log.event(at="stats", **extra, output=output.name, **output.stats.fields())


async def _all(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)
