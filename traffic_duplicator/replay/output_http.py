"""One `--output-http` destination: a bounded queue and a keep-alive connection pool.

Everything here runs on event-loop callbacks rather than one task per worker: when a
response ends, its connection takes the next queued request straight away. That keeps
the per-request cost to a few function calls, which is what lets one Python process
replay thousands of requests a second.

Failure stays local: a dead, slow or TLS-broken destination fills only its own queue
(then drops and counts), and connection attempts back off, so other outputs keep flowing.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from typing import TYPE_CHECKING, cast
from urllib.parse import urljoin, urlsplit

from traffic_duplicator.backoff import Backoff, BackoffPolicy
from traffic_duplicator.logs import EventLog, RateLimitedLog
from traffic_duplicator.replay.config import HttpOutputConfig
from traffic_duplicator.replay.limits import Limiter
from traffic_duplicator.replay.request import (
    HeadEditor,
    Request,
    to_origin_form,
    with_header,
    with_host,
    with_target_prefix,
)
from traffic_duplicator.replay.response import ResponseError, ResponseParser
from traffic_duplicator.replay.stats import OutputStats

if TYPE_CHECKING:  # the tap's module builds on this one
    from traffic_duplicator.replay.shadow import OutputTap

# Reconnecting to a destination that refuses or times out: 0.1 s doubling to 2 s.
CONNECT_BACKOFF = BackoffPolicy(base=0.1, cap=2.0)
SWEEP_INTERVAL = 0.25  # how often deadlines are checked: timeouts are this coarse
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


class Item:
    """A queued request: the bytes for this output, and what reading its answer needs."""

    __slots__ = ("closes", "data", "head_request", "redirects_left", "retried", "tag")

    def __init__(self, data: bytes, head_request: bool, closes: bool, redirects: int) -> None:
        self.data = data
        self.head_request = head_request
        self.closes = closes
        self.redirects_left = redirects
        self.retried = False
        self.tag: object = None  # what comparison needs to know of the request (shadow.py)


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, output: HttpOutput) -> None:
        self.output = output
        self.transport: asyncio.Transport | None = None
        self.item: Item | None = None
        self.parser: ResponseParser | None = None
        self.started = 0.0
        self.deadline = 0.0
        self.responses = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, item: Item) -> None:
        assert self.transport is not None
        self.item = item
        self.parser = ResponseParser(item.head_request)
        self.started = time.monotonic()
        self.deadline = self.started + self.output.config.timeout
        self.transport.write(item.data)

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:
            self.abort()  # bytes nobody asked for: the connection cannot be trusted
            return
        try:
            parser.feed(data)
        except ResponseError as exc:
            self.fail(f"bad response: {exc}")
            return
        if parser.done:
            self.complete()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        parser = self.parser
        if parser is not None and self.item is not None:
            try:
                parser.eof()
            except ResponseError as error:
                self.fail(_describe(exc) if exc else str(error), lost=True)
            else:
                self.complete()
        self.output.forget(self)

    def complete(self) -> None:
        parser, item = self.parser, self.item
        assert parser is not None and item is not None
        self.parser = self.item = None
        self.responses += 1
        reuse = parser.keep_alive and not item.closes and not self.closed
        if not reuse:
            self.abort()
        self.output.finished(self, item, parser, time.monotonic() - self.started, reuse)

    def fail(self, reason: str, lost: bool = False) -> None:
        item, parser = self.item, self.parser
        self.item = self.parser = None
        self.abort()
        if item is not None:
            # A reused connection the server closed before answering: it never saw the
            # request, so one retry on a fresh connection is safe and avoids a false loss.
            retry = lost and self.responses > 0 and parser is not None and not parser.started
            self.output.failed(self, item, reason, retry)

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()
            self.output.forget(self)


class HttpOutput:
    """Queue, pool, limits and counters for one destination URL."""

    def __init__(
        self,
        config: HttpOutputConfig,
        controls_host: bool,
        log: EventLog,
        verbose: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.tap: OutputTap | None = None  # with comparison on, sees responses (shadow.py)
        target = config.target
        self.name = target.url
        self.stats = OutputStats()
        self._log = log
        self._errors = RateLimitedLog(log)
        self._verbose = verbose
        self._limiter = Limiter(target.limit) if target.limit else None
        self._host = None if (config.original_host or controls_host) else target.host_header
        self._host_bytes = self._host.encode() if self._host else b""
        self._prefix = target.path.encode()
        # Absolute-form targets would tell the destination it is production (RFC 9112
        # §3.2.2); unless the user keeps the original host, they go out in origin form.
        self._origin_form = not config.original_host
        self._authorization = target.authorization  # from the URL's userinfo, as gor 1.x
        self._ssl: ssl.SSLContext | None = None
        if target.scheme == "https":
            self._ssl = ssl_context or make_ssl_context(config.skip_verify)
        self._queue: collections.deque[Item] = collections.deque()
        self._queue_bytes = 0
        self._idle: list[Connection] = []
        self._busy: set[Connection] = set()
        self._connecting = 0
        self._backoff = Backoff(CONNECT_BACKOFF)  # on the loop's clock
        self._retry_handle: asyncio.TimerHandle | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._connects: set[asyncio.Task[None]] = set()
        self._closing = False
        self._draining = False
        self._drained: list[asyncio.Future[None]] = []

    # -- intake ------------------------------------------------------------------------

    def offer(self, request: Request) -> None:
        """Queue a request for this destination, or drop and count it; never blocks."""
        stats = self.stats
        if self._limiter is not None and not self._limiter.allow():
            stats.limited += 1
            return
        if self._closing:
            stats.dropped += 1
            return
        head = request.head
        if self._origin_form:
            head = to_origin_form(head)
        if self._host is not None:
            head = with_host(head, self._host_bytes)
        if self._prefix:
            head = with_target_prefix(head, self._prefix)
        if self._authorization is not None:
            head = with_header(head, b"Authorization", self._authorization)
        data = head + request.body if request.body else head
        item = Item(data, request.method == b"HEAD", request.close, self.config.redirects)
        if self.tap is not None:
            item.tag = self.tap.tag(request)
        if self._idle and not self._queue:
            self._dispatch(self._idle.pop(), item)
            return
        if len(self._queue) >= self.config.queue_len or (
            self._queue_bytes + len(data) > self.config.queue_bytes and self._queue
        ):
            stats.dropped += 1
            return
        self._queue.append(item)
        self._queue_bytes += len(data)
        stats.queued = len(self._queue)
        self._grow()

    def _dispatch(self, conn: Connection, item: Item) -> None:
        self._busy.add(conn)
        conn.send(item)
        self._ensure_sweeper()

    def _take(self) -> Item | None:
        if not self._queue:
            return None
        item = self._queue.popleft()
        self._queue_bytes -= len(item.data)
        self.stats.queued = len(self._queue)
        return item

    # -- connections ---------------------------------------------------------------------

    def _grow(self) -> None:
        """Open another connection if requests wait and the pool may grow."""
        if self._closing or not self._queue or self._idle:
            return
        size = len(self._busy) + self._connecting
        if size >= self.config.workers or self._connecting >= max(1, len(self._queue)):
            return
        if not self._backoff.ready(self._loop.time()):
            if self._retry_handle is None:
                self._retry_handle = self._loop.call_at(self._backoff.retry_at, self._retry)
            return
        self._connecting += 1
        task = self._loop.create_task(self._connect(), name=f"connect {self.name}")
        self._connects.add(task)  # a reference, so the task is not collected mid-flight
        task.add_done_callback(self._connects.discard)

    def _retry(self) -> None:
        self._retry_handle = None
        self._grow()

    async def _connect(self) -> None:
        target = self.config.target
        new = self.tap.connection if self.tap is not None else Connection
        try:
            _, conn = await asyncio.wait_for(
                self._loop.create_connection(
                    lambda: new(self),
                    target.host,
                    target.port,
                    ssl=self._ssl,
                    server_hostname=target.host if self._ssl else None,
                ),
                self.config.timeout,
            )
        except asyncio.CancelledError:
            self._connecting -= 1
            raise
        except (OSError, asyncio.TimeoutError, ssl.SSLError, ValueError) as exc:
            self._connecting -= 1
            self._connect_failed(exc)
            return
        self._connecting -= 1
        self._backoff.success()
        self._ready(conn)
        self._grow()

    def _connect_failed(self, exc: BaseException) -> None:
        self._backoff.failure(self._loop.time())
        reason = _describe(exc)
        self._errors.event(
            f"connect:{reason}", at="error", output=self.name, error=f"connect: {reason}"
        )
        if self._draining and not self._busy and not self._idle:
            # Shutting down and the destination is unreachable: waiting cannot help.
            self.stats.errors += len(self._queue)
            if self.tap is not None:
                for item in self._queue:
                    self.tap.failed(item)
            self._queue.clear()
            self._queue_bytes = 0
            self.stats.queued = 0
        self._grow()
        self._check_drained()

    def _ready(self, conn: Connection) -> None:
        """A connection is free: give it the next request, or park it."""
        if conn.closed:
            return
        item = self._take()
        if item is None:
            self._busy.discard(conn)
            self._idle.append(conn)
            self._check_drained()
            return
        self._dispatch(conn, item)

    def forget(self, conn: Connection) -> None:
        self._busy.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        self._grow()
        self._check_drained()

    # -- outcomes ------------------------------------------------------------------------

    def finished(
        self, conn: Connection, item: Item, parser: ResponseParser, latency: float, reuse: bool
    ) -> None:
        status = parser.status
        if (
            item.redirects_left > 0
            and status in REDIRECT_STATUSES
            and parser.location is not None
            and (follow := self._redirect(item, status, parser.location)) is not None
        ):
            self._queue.appendleft(follow)
            self._queue_bytes += len(follow.data)
            self.stats.queued = len(self._queue)
            if reuse:
                self._ready(conn)
            else:
                self._busy.discard(conn)
                self._grow()
            return
        self.stats.record(status, latency)
        if self.tap is not None:
            self.tap.answered(conn, item, latency)
        if self._verbose:
            self._log.event(
                at="replayed",
                output=self.name,
                request=_request_line(item.data),
                status=status,
                ms=round(latency * 1000, 2),
            )
        if reuse:
            self._ready(conn)
        else:
            self._busy.discard(conn)
            self._grow()
            self._check_drained()

    def _kick(self) -> None:
        while self._idle and self._queue:
            conn = self._idle.pop()
            item = self._take()
            assert item is not None
            self._dispatch(conn, item)

    def failed(self, conn: Connection, item: Item, reason: str, retry: bool) -> None:
        self._busy.discard(conn)
        if retry and not item.retried:
            item.retried = True
            self._queue.appendleft(item)
            self._queue_bytes += len(item.data)
            self.stats.queued = len(self._queue)
            self._kick()
            self._grow()
            return
        self.stats.errors += 1
        if self.tap is not None:
            self.tap.failed(item)
        self._errors.event(f"request:{reason}", at="error", output=self.name, error=reason)
        self._grow()
        self._check_drained()

    def _redirect(self, item: Item, status: int, location: bytes) -> Item | None:
        """The request to send for a redirect, if it stays on this destination."""
        target = self.config.target
        base = f"{target.scheme}://{target.host}:{target.port}/"
        url = urlsplit(urljoin(base, location.decode("latin-1")))
        if (url.scheme, url.hostname, url.port or (443 if url.scheme == "https" else 80)) != (
            target.scheme,
            target.host,
            target.port,
        ):
            return None
        head_end = item.data.find(b"\r\n\r\n") + 4
        edit = HeadEditor(item.data[:head_end])
        body = item.data[head_end:]
        edit.set_target(((url.path or "/") + (f"?{url.query}" if url.query else "")).encode())
        if status in (301, 302, 303) and edit.method != b"HEAD":
            # As browsers and Go's client do: the follow-up is a GET without a body.
            edit.method = b"GET"
            edit.lines = [
                line
                for line in edit.lines
                if line.partition(b":")[0].strip().lower()
                not in (b"content-length", b"transfer-encoding", b"content-type")
            ]
            body = b""
        follow = Item(edit.render() + body, item.head_request, item.closes, item.redirects_left - 1)
        follow.tag = item.tag  # compared as the answer to the original request
        return follow

    # -- timeouts, shutdown ----------------------------------------------------------------

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(SWEEP_INTERVAL, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = time.monotonic()
        for conn in list(self._busy):
            if conn.item is not None and now > conn.deadline:
                conn.fail(f"timeout after {self.config.timeout:g}s")
        if self._busy:
            self._ensure_sweeper()

    @property
    def pending(self) -> int:
        """Requests queued or in flight."""
        return len(self._queue) + sum(1 for c in self._busy if c.item is not None)

    def _check_drained(self) -> None:
        if self._drained and self.pending == 0:
            for waiter in self._drained:
                if not waiter.done():
                    waiter.set_result(None)
            self._drained.clear()

    async def drain(self) -> None:
        """Wait until nothing is queued or in flight."""
        self._draining = True
        if self.pending == 0:
            return
        if not self._busy and not self._idle and not self._connecting:
            self._grow()
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._drained.append(waiter)
        await waiter

    def close(self) -> int:
        """Stop: abandon what is left (returned as a count) and close every connection."""
        self._closing = True
        abandoned = self.pending
        # Queued requests were never sent (dropped); in-flight ones got no answer (errors).
        self.stats.errors += abandoned - len(self._queue)
        self.stats.dropped += len(self._queue)
        self._queue.clear()
        self._queue_bytes = 0
        self.stats.queued = 0
        for conn in [*self._idle, *self._busy]:
            conn.item = None
            conn.parser = None
            conn.abort()
        for handle in (self._retry_handle, self._sweeper):
            if handle is not None:
                handle.cancel()
        for task in self._connects:
            task.cancel()
        return abandoned


def make_ssl_context(skip_verify: bool) -> ssl.SSLContext:
    """Certificates are verified against the system store unless the user opts out."""
    context = ssl.create_default_context()
    if skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _request_line(data: bytes) -> str:
    return data[: data.find(b"\r\n")][:200].decode("latin-1")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        # gor before 1.3 never verified: a file that worked there may fail here.
        return (
            f"TLS certificate: {exc.verify_message}; fix the certificate, or add "
            "--output-http-skip-verify to not check it (gor before 1.3 did not)"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
