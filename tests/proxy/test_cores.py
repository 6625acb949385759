"""The two relay cores: the switch between them, and what the epoll core adds.

The relay's behaviour on both cores is in test_relay.py, the drain and a bad switch value
in test_server.py, flow control in test_memory.py; here the switch, half-close with bytes
still pending, one connection per request, a bug in one pair that must not stop the
others, and the hand-over of keep-alive connections to the protocols core.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import select
import socket
import struct
import subprocess
import threading
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.proxy.servers import (
    CORES,
    TOO_LARGE,
    AppServer,
    Client,
    RefusesUploads,
    Sink,
    pattern_bytes,
    proxy,
    upload_forever,
)
from tests.support import ThreadedServer, engine_argv, free_port, python_env, wait_until
from traffic_duplicator.logs import EventLog, RateLimitedLog
from traffic_duplicator.proxy import relay
from traffic_duplicator.proxy.cli import parse_args
from traffic_duplicator.proxy.config import EPOLL_ENV
from traffic_duplicator.proxy.counters import RelayCounters
from traffic_duplicator.proxy.pair import RelayContext
from traffic_duplicator.proxy.relay import AdoptedSide, ClientSide

if TYPE_CHECKING:
    from traffic_duplicator.proxy.poller import Poller
    from traffic_duplicator.proxy.rawpair import RawPair

MiB = 1 << 20


@pytest.mark.parametrize(
    ("value", "epoll"), [("", True), ("1", True), (" On ", True), ("0", False), ("off", False)]
)
def test_the_switch_turns_the_epoll_core_on_and_off(
    monkeypatch: pytest.MonkeyPatch, value: str, epoll: bool
) -> None:
    monkeypatch.setenv(EPOLL_ENV, value)
    assert parse_args(["-l", "5000", "-r", "5001"]).epoll is epoll


def test_an_app_name_that_does_not_resolve_falls_back_to_protocols(tmp_path: Path) -> None:
    # A name is looked up per connection, which only asyncio's connect does off the loop.
    argv = ["-l", str(free_port()), "-r", "no-such-host.invalid:5001", "--stats-interval", "0"]
    log = tmp_path / "proxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            engine_argv("traffic_duplicator.proxy", *argv), env=python_env(), stderr=out
        )
        try:
            wait_until(lambda: "at=listening" in log.read_text(), message="listening")
        finally:
            proc.terminate()
            proc.wait(15)
    assert " core=protocols " in log.read_text()


@pytest.mark.parametrize("core", CORES)
def test_client_eof_while_bytes_to_the_app_are_pending(tmp_path: Path, core: str) -> None:
    # The app waits before reading, so the upload piles up in the proxy's pending buffer
    # and the kernel's: the EOF must reach the app only after the last byte.
    size = 8 * MiB
    digest = hashlib.sha256()
    with (
        AppServer() as app,
        proxy(tmp_path, app.port, core=core) as front,
        Client(front.port, timeout=30) as client,
    ):
        client.send(b"POST /upload?pause=0.5 HTTP/1.1\r\nHost: a\r\n")
        client.send(b"Content-Length: %d\r\n\r\n" % size)
        for piece in pattern_bytes(size):
            digest.update(piece)
            client.send(piece)
        client.sock.shutdown(socket.SHUT_WR)
        response = client.read()
        assert response.body == b"%d %s" % (size, digest.hexdigest().encode())
        assert client.file.read() == b""  # then the proxy closes


@pytest.mark.parametrize("core", CORES)
def test_a_connection_per_request_is_counted_and_logged(tmp_path: Path, core: str) -> None:
    with AppServer() as app, proxy(tmp_path, app.port, args=("-v",), core=core) as front:
        for i in range(50):
            with Client(front.port) as client:
                response = client.request("GET", f"/close/{i}", headers="Connection: close\r\n")
                assert response.body == f"GET /close/{i}".encode()
                assert client.file.read() == b""
    stats = front.stats()[-1]
    assert (stats["open"], stats["requests"]) == ("0", "50")
    log = front.log()
    # The start-up probe (wait_for_port) is a connection too.
    opened = re.findall(r"^at=connection_opened peer=\S*127\.0\.0\.1", log, re.M)
    assert len(opened) == int(stats["connections"]) >= 50
    assert len(re.findall(r"^at=connection_closed requests=1", log, re.M)) == 50


class Greeting(ThreadedServer):
    """An app that answers before any request, then closes (as a busy server's 503 does)."""

    def handle(self, conn: socket.socket) -> None:
        conn.sendall(GREETING)


GREETING = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize("core", CORES)
def test_an_app_that_answers_and_closes_at_once_is_relayed(tmp_path: Path, core: str) -> None:
    # Its bytes and its EOF may come with the connection's first event.
    with Greeting() as app, proxy(tmp_path, app.port, core=core) as front:
        for _ in range(5):
            with Client(front.port) as client:
                assert client.file.read() == GREETING


class Broken:
    """A registered object whose events raise: a bug in one pair (which then closes)."""

    def __init__(self, poller: Poller, sock: socket.socket) -> None:
        self.poller = poller
        self.sock = sock
        self.failed: list[BaseException] = []

    def ready(self, fd: int, events: int) -> None:
        raise RuntimeError("a bug")

    def fail(self, exc: BaseException) -> None:
        self.failed.append(exc)
        self.poller.forget(self.sock.fileno())
        self.sock.close()


class Echo:
    """A registered object that answers what it reads: a healthy neighbour."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def ready(self, fd: int, events: int) -> None:
        if events & select.EPOLLIN:
            self.sock.send(self.sock.recv(100))

    def fail(self, exc: BaseException) -> None:
        raise AssertionError("not expected")


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="Linux only")
def test_a_bug_in_one_pair_is_logged_and_the_others_go_on(tmp_path: Path) -> None:
    from traffic_duplicator.proxy.poller import Poller

    async def scenario() -> None:
        lines = tmp_path / "log"
        with lines.open("w") as out:
            log = EventLog(None, out)
            context = RelayContext(
                asyncio.get_running_loop(),
                "127.0.0.1",
                1,
                (),
                RelayCounters(),
                RateLimitedLog(log),
                log,
            )
            poller = Poller(context)
            bad_ours, bad_theirs = socket.socketpair()
            good_ours, good_theirs = socket.socketpair()
            broken, echo = Broken(poller, bad_ours), Echo(good_ours)
            poller.add(bad_ours.fileno(), broken, select.EPOLLIN)
            poller.add(good_ours.fileno(), echo, select.EPOLLIN)
            bad_theirs.send(b"x")
            good_theirs.send(b"ping")
            good_theirs.setblocking(False)
            for _ in range(200):
                await asyncio.sleep(0.01)
                try:
                    if good_theirs.recv(100) == b"ping":
                        break
                except BlockingIOError:
                    continue
            else:
                raise AssertionError("the healthy neighbour got no event")
            assert [str(exc) for exc in broken.failed] == ["a bug"]
            poller.close()
            for sock in (bad_theirs, good_ours, good_theirs):
                sock.close()
        assert 'at=relay_bug error="RuntimeError: a bug"' in lines.read_text()

    asyncio.run(scenario())


class _BrokenTap:
    """A tap whose clean-up fails: stands for a bug in the mirror path."""

    def abandon(self) -> None:
        raise RuntimeError("a bug in the tap")


@dataclass
class LivePair:
    """An in-process epoll core pair: a socketpair's end as the client, a real app socket."""

    context: RelayContext
    poller: Poller
    pair: RawPair
    client_peer: socket.socket  # the client's end
    app_peer: socket.socket  # the app's end, as the app accepted it


@contextlib.asynccontextmanager
async def live_pair(tmp_path: Path) -> AsyncIterator[LivePair]:
    from traffic_duplicator.proxy.poller import Poller
    from traffic_duplicator.proxy.rawpair import RawPair

    loop = asyncio.get_running_loop()
    with (
        socket.create_server(("127.0.0.1", 0)) as app_listener,
        (tmp_path / "log").open("w") as out,
    ):
        app_listener.setblocking(False)
        log = EventLog(None, out)
        context = RelayContext(
            loop,
            "127.0.0.1",
            app_listener.getsockname()[1],
            (),
            RelayCounters(),
            RateLimitedLog(log),
            log,
        )
        poller = Poller(context)
        ours, theirs = socket.socketpair()
        pair = RawPair(poller, socket.SocketType(ours.family, ours.type, 0, ours.detach()))
        pair.start(None)
        app_peer, _ = await loop.sock_accept(app_listener)
        for _ in range(500):
            if pair.app_ready:
                break
            await asyncio.sleep(0.01)
        assert pair.app_ready
        try:
            with theirs, app_peer:
                app_peer.setblocking(True)
                app_peer.settimeout(5)
                theirs.settimeout(5)
                yield LivePair(context, poller, pair, theirs, app_peer)
        finally:
            poller.close()


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="Linux only")
def test_a_bug_while_closing_the_client_does_not_leak_the_app_socket(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with live_pair(tmp_path) as live:
            live.pair.tap = _BrokenTap()  # type: ignore[assignment]
            with pytest.raises(RuntimeError, match="a bug in the tap"):
                live.pair.abort()
            assert live.pair.app is None  # closed in spite of the bug
            assert live.app_peer.recv(10) == b""  # the app sees the close

    asyncio.run(scenario())


def epolls(pid: int) -> dict[int, set[int]]:
    """Each epoll descriptor of process `pid`, with the descriptors registered in it."""
    found: dict[int, set[int]] = {}
    for link in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if str(Path.readlink(link)) != "anon_inode:[eventpoll]":
                continue
            info = Path(f"/proc/{pid}/fdinfo/{link.name}").read_text()
        except FileNotFoundError:
            continue
        found[int(link.name)] = {int(fd) for fd in re.findall(r"^tfd:\s*(\d+)", info, re.M)}
    return found


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="Linux only")
def test_a_keep_alive_connection_moves_to_the_protocols_core_at_its_second_request(
    tmp_path: Path,
) -> None:
    with (
        AppServer() as app,
        Sink() as sink,
        proxy(tmp_path, app.port, f"gor://127.0.0.1:{sink.port}", core="epoll") as front,
        Client(front.port) as client,
    ):
        assert client.request("GET", "/first").body == b"GET /first"
        before = epolls(front.proc.pid)
        # The poller's epoll is the one the loop's epoll watches.
        (poller,) = [fd for fd in before if any(fd in other for other in before.values())]
        assert len(before[poller]) == 3  # the listening socket, the client's and the app's
        assert client.request("POST", "/second", body=b"x" * 5000).body == b"POST /second"
        after = epolls(front.proc.pid)
        moved = before[poller] - after[poller]
        assert len(moved) == 2 and len(after[poller]) == 1  # only the listener is left
        assert any(moved <= registered for registered in after.values())  # on the loop's
        for i in range(20):  # the protocols core relays the rest
            assert client.request("GET", f"/more/{i}").body == f"GET /more/{i}".encode()
        wait_until(lambda: sink.total() > 0 and sink.streams()[0].count(b"\n1 ") >= 21)
    stats = front.stats()[-1]
    assert (stats["open"], stats["requests"], stats["mirrored"]) == ("0", "22", "22")
    assert "relay_bug" not in front.log()


# ---- the hand-over, cut short at each step ------------------------------------------------

REQUEST = b"GET /%s HTTP/1.1\r\nHost: t\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
# uvloop's transports differ from asyncio's where it matters here (a cancelled
# connect_accepted_socket calls connection_made but never connection_lost).
LOOPS = ("asyncio", "uvloop")


def run_on(loop: str, scenario: Coroutine[object, object, None]) -> None:
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            scenario.close()
            pytest.skip("uvloop is not installed here (pip install uvloop==0.23.0)")
        uvloop.run(scenario)
    else:
        asyncio.run(scenario)


def tcp_socketpair() -> tuple[socket.socket, socket.socket]:
    """Like socket.socketpair(), over TCP, so that the client's end can reset."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        theirs = socket.create_connection(listener.getsockname())
        ours, _ = listener.accept()
    return ours, theirs


async def recv(sock: socket.socket) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 65536), 5)


async def peer_closed(sock: socket.socket) -> bool:
    """True once `sock`'s peer has closed it (with a FIN or a reset); bytes before are skipped."""
    try:
        while await recv(sock):
            pass
    except ConnectionResetError:
        pass
    return True


async def hand_over(live: LivePair, steps: int) -> ClientSide:
    """One exchange, then a second request: the pair hands over; `steps` iterations pass."""
    client, app = live.client_peer, live.app_peer
    client.setblocking(False)
    app.setblocking(False)
    client.send(REQUEST % b"a")
    assert await recv(app) == REQUEST % b"a"
    app.send(RESPONSE)
    assert await recv(client) == RESPONSE
    client.send(REQUEST % b"b")
    for _ in range(1000):
        if live.pair.closed:
            break
        await asyncio.sleep(0)
    assert live.pair.closed  # inert: its sockets are the new pair's
    for _ in range(steps):
        await asyncio.sleep(0)
    (side,) = live.context.relays
    assert isinstance(side, AdoptedSide)
    return side


async def all_closed(live: LivePair) -> None:
    counters = live.context.counters
    for _ in range(200):
        if counters.open == 0 and not live.context.relays:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still open: {counters.open}, {live.context.relays}")


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="Linux only")
@pytest.mark.parametrize("loop", LOOPS)
def test_a_drain_during_the_hand_over_still_relays_the_request_that_started_it(
    tmp_path: Path, loop: str
) -> None:
    # That request arrived before the drain: the epoll core would have relayed it.
    async def scenario() -> None:
        async with live_pair(tmp_path) as live:
            side = await hand_over(live, steps=0)
            assert side.app_transport is None  # still adopting
            live.context.drain()
            assert await recv(live.app_peer) == REQUEST % b"b"
            live.app_peer.send(RESPONSE)
            assert await recv(live.client_peer) == RESPONSE
            await all_closed(live)  # closed after its response, as a drain does
            assert await peer_closed(live.client_peer)

    run_on(loop, scenario())


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="Linux only")
@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("steps", range(6))
@pytest.mark.parametrize("cut", ["abort", "close", "client reset", "app reset"])
def test_a_hand_over_cut_short_closes_both_sockets(
    tmp_path: Path, loop: str, steps: int, cut: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A drain's close or abort, or either peer's reset, at each step of the adoption.
    monkeypatch.setattr(socket, "socketpair", tcp_socketpair)

    async def scenario() -> None:
        async with live_pair(tmp_path) as live:
            side = await hand_over(live, steps)
            if cut in ("abort", "close"):
                getattr(side, cut)()
            else:
                peer = live.client_peer if cut == "client reset" else live.app_peer
                peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                peer.close()
            await all_closed(live)
            for peer in (live.client_peer, live.app_peer):
                assert peer.fileno() == -1 or await peer_closed(peer)

    run_on(loop, scenario())


def _broken_app_side(client: ClientSide) -> None:
    """Stands for a bug while the adopted app connection's transport is being made."""
    raise RuntimeError("a bug in AppSide")


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="Linux only")
@pytest.mark.parametrize("loop", LOOPS)
def test_a_failed_hand_over_leaves_the_client_socket_to_its_transport(
    tmp_path: Path, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client's transport exists when the app's fails. Closing the client socket as
    # well would free its descriptor number while uvloop's handle still holds it: a socket
    # opened next takes that number, and the handle's own close would then close it.
    monkeypatch.setattr(relay, "AppSide", _broken_app_side)

    async def scenario() -> None:
        async with live_pair(tmp_path) as live:
            side = await hand_over(live, steps=0)
            task = side.connect_task
            assert task is not None
            opened: list[socket.socket] = []
            # Runs right after AdoptedSide._adopted, before the loop's next iteration.
            task.add_done_callback(lambda _: opened.append(socket.socket()))
            await all_closed(live)
            assert await peer_closed(live.client_peer)
            for _ in range(10):
                await asyncio.sleep(0)
            (probe,) = opened
            with probe:
                probe.getsockname()  # OSError (EBADF) if its descriptor was closed under it
        assert "relay_bug" in (tmp_path / "log").read_text()

    run_on(loop, scenario())


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="Linux only")
def test_pipelined_uploaded_and_upgraded_requests_after_the_hand_over(tmp_path: Path) -> None:
    with (
        AppServer() as app,
        proxy(tmp_path, app.port, core="epoll") as front,
        Client(front.port) as client,
    ):
        assert client.request("GET", "/first").body == b"GET /first"
        client.send(b"".join(REQUEST % b"p%d" % i for i in range(5)))
        for i in range(5):
            assert client.read().body == b"GET /p%d" % i
        assert client.request("POST", "/upload", body=b"y" * (3 * MiB)).status == 200
        client.send(
            REQUEST.replace(b"\r\n\r\n", b"\r\nUpgrade: ws\r\nConnection: Upgrade\r\n\r\n") % b"ws"
        )
        assert client.read().status == 101
        client.send(b"raw bytes")
        got = b""
        while len(got) < 9:
            got += client.sock.recv(100)
        assert got == b"raw bytes"
    assert front.stats()[-1]["open"] == "0"
    assert "relay_bug" not in front.log()


# ---- what the epoll core saves on each connection -----------------------------------------


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="Linux only")
def test_the_app_socket_turns_nagle_off_before_its_second_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first write has nothing unacknowledged before it, so Nagle's algorithm cannot hold
    # it back; a second one could wait for the app's delayed ACK without TCP_NODELAY.
    monkeypatch.setattr(socket, "socketpair", tcp_socketpair)

    async def scenario() -> None:
        async with live_pair(tmp_path) as live:
            client, app = live.client_peer, live.app_peer
            client.setblocking(False)
            app.setblocking(False)
            ours = live.pair.app
            assert ours is not None

            def nodelay() -> int:
                return ours.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

            head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\n"
            client.send(head)
            assert await recv(app) == head
            assert nodelay() == 0
            client.send(b"body")
            assert await recv(app) == b"body"
            assert nodelay() == 1
            # The accepted socket was never made non-blocking: each call says MSG_DONTWAIT.
            assert live.pair.client.getblocking()

    asyncio.run(scenario())


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="Linux only")
@pytest.mark.parametrize("loop", LOOPS)
def test_the_sockets_handed_over_are_non_blocking_and_without_nagle(
    tmp_path: Path, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The transports are made for sockets like the protocols core's own; the request that
    # started the hand-over was the app socket's first write, so TCP_NODELAY was not set yet.
    monkeypatch.setattr(socket, "socketpair", tcp_socketpair)

    async def scenario() -> None:
        async with live_pair(tmp_path) as live:
            side = await hand_over(live, steps=0)
            for _ in range(500):
                if side.app_transport is not None:
                    break
                await asyncio.sleep(0.01)
            assert side.transport is not None and side.app_transport is not None
            client = side.transport.get_extra_info("socket")
            app = side.app_transport.get_extra_info("socket")
            assert not os.get_blocking(client.fileno())
            assert not os.get_blocking(app.fileno())
            assert app.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert await recv(live.app_peer) == REQUEST % b"b"
            side.abort()
            await all_closed(live)

    run_on(loop, scenario())


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="Linux only")
def test_a_default_socket_timeout_does_not_make_the_relay_wait(tmp_path: Path) -> None:
    # With a default timeout CPython would poll, then wait, inside every recv and send on
    # the accepted sockets, which the epoll core otherwise leaves in blocking mode.
    from traffic_duplicator.proxy.poller import Listener, Poller
    from traffic_duplicator.proxy.rawpair import RawPair

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        with (
            socket.create_server(("127.0.0.1", 0)) as app,
            socket.create_server(("127.0.0.1", 0)) as listening,
            (tmp_path / "log").open("w") as out,
        ):
            log = EventLog(None, out)
            context = RelayContext(
                loop,
                "127.0.0.1",
                app.getsockname()[1],
                (),
                RelayCounters(),
                RateLimitedLog(log),
                log,
            )
            poller = Poller(context)
            listener = Listener(listening, poller)
            try:
                with socket.create_connection(listening.getsockname()):
                    for _ in range(500):
                        if context.relays:
                            break
                        await asyncio.sleep(0.01)
                    (pair,) = context.relays
                    assert isinstance(pair, RawPair)
                    assert pair.client.gettimeout() == 0.0  # non-blocking: no wait, no poll
                    pair.abort()
            finally:
                listener.close()
                poller.close()

    socket.setdefaulttimeout(5.0)
    try:
        asyncio.run(scenario())
    finally:
        socket.setdefaulttimeout(None)


@pytest.mark.parametrize("core", CORES)
def test_an_answer_before_the_end_of_an_upload_reaches_the_client(
    tmp_path: Path, core: str
) -> None:
    # What the app answered must reach the client before any close: the proxy lingers
    # (test_linger.py) rather than close the client while its bytes are still unread.
    with RefusesUploads() as app, proxy(tmp_path, app.port, core=core) as front:
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", front.port), timeout=10) as client:
                uploader = threading.Thread(target=upload_forever, args=(client,), daemon=True)
                uploader.start()
                received = b""
                with contextlib.suppress(ConnectionResetError):
                    while data := client.recv(65536):
                        received += data
                assert received == TOO_LARGE
                with contextlib.suppress(OSError):  # not connected any more after a reset
                    client.shutdown(socket.SHUT_RDWR)  # the uploader's sendall fails now
                uploader.join(10)
                assert not uploader.is_alive()
