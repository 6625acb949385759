"""Large transfers stream through with bounded memory; a stalled mirror cannot grow it.

RSS is read from /proc/PID/status: VmHWM (the peak) after the transfer against VmRSS
before it. The bounds are far below the bytes moved, so buffering a transfer fails them.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from tests.proxy.servers import (
    CORES,
    AppServer,
    Client,
    Proxy,
    Sink,
    Stalled,
    pattern_bytes,
    proxy,
)
from tests.support import RecordingServer
from traffic_duplicator.proxy.config import DEFAULT_MIRROR_CONNECTIONS

MiB = 1 << 20
BIG = 50 * MiB
# Growth allowed for a 50 MB transfer: a few socket reads and write buffers in flight.
TRANSFER_GROWTH = 16 * MiB
STALLED_MIRROR_GROWTH = 32 * MiB  # the bound for 200 MB past a target that never reads


def warm_up(front: Proxy) -> int:
    """One small exchange so that lazy imports and buffers exist; then the baseline RSS."""
    with Client(front.port) as client:
        assert client.request("POST", "/upload", b"x" * 300_000).status == 200
    time.sleep(0.2)
    return front.vm("VmRSS")


def upload(port: int, size: int, target: str = "/upload") -> bytes:
    digest = hashlib.sha256()
    with Client(port, timeout=60) as client:
        client.send(f"POST {target} HTTP/1.1\r\nHost: a\r\nContent-Length: {size}\r\n\r\n".encode())
        for piece in pattern_bytes(size):
            digest.update(piece)
            client.send(piece)
        response = client.read()
    assert response.status == 200
    assert response.body == b"%d %s" % (size, digest.hexdigest().encode())
    return response.body


def test_50mb_upload_and_download_are_byte_exact_with_bounded_rss(tmp_path: Path) -> None:
    with (
        AppServer() as app,
        Sink() as sink,
        proxy(tmp_path, app.port, f"127.0.0.1:{sink.port}") as front,
    ):
        baseline = warm_up(front)
        upload(front.port, BIG)
        expected = hashlib.sha256()
        for piece in pattern_bytes(BIG):
            expected.update(piece)
        with Client(front.port, timeout=60) as client:
            client.send(b"GET /download?size=%d HTTP/1.1\r\nHost: a\r\n\r\n" % BIG)
            line = client.file.readline()
            assert line.startswith(b"HTTP/1.1 200")
            while client.file.readline() != b"\r\n":
                pass
            got = hashlib.sha256()
            left = BIG
            while left:
                piece = client.file.read(min(left, MiB))
                assert piece, "download cut short"
                got.update(piece)
                left -= len(piece)
        assert got.hexdigest() == expected.hexdigest()
        growth = front.vm("VmHWM") - baseline
        assert growth < TRANSFER_GROWTH, f"RSS grew {growth / MiB:.1f} MiB"
    # Each request was mirrored whole or counted lost whole: warm-up, upload, download.
    counts = _target_counts(front)
    assert counts["mirrored"] + counts["dropped"] + counts["failed"] == 3
    if counts["mirrored"] == 3:
        assert sink.total() > BIG


@pytest.mark.parametrize("core", CORES)
def test_slow_client_and_slow_app_are_backpressured_not_buffered(tmp_path: Path, core: str) -> None:
    with AppServer() as app, proxy(tmp_path, app.port, core=core) as front:
        baseline = warm_up(front)
        # A slow app: it waits before reading a 30 MB upload, which must wait in the
        # client's socket, not in the proxy.
        upload(front.port, 30 * MiB, "/upload?pause=1.5")
        # A slow client: it stops reading a 30 MB download for a while.
        with Client(front.port, timeout=60) as client:
            client.send(b"GET /download?size=%d HTTP/1.1\r\nHost: a\r\n\r\n" % (30 * MiB))
            client.file.readline()
            time.sleep(1.5)
            while client.file.readline() != b"\r\n":
                pass
            assert len(client.file.read(30 * MiB)) == 30 * MiB
        growth = front.vm("VmHWM") - baseline
        assert growth < TRANSFER_GROWTH, f"RSS grew {growth / MiB:.1f} MiB"


def test_rss_stays_flat_while_200mb_pass_a_mirror_that_never_reads(tmp_path: Path) -> None:
    with (
        AppServer() as app,
        RecordingServer(read=False) as stalled,
        proxy(tmp_path, app.port, f"127.0.0.1:{stalled.port}") as front,
    ):
        baseline = warm_up(front)
        sizes = [1_000_000] * 100 + [100_000] * 500 + [1_000] * 1000  # ~151 MB, many requests
        clients = 4
        errors: list[BaseException] = []

        def work(share: list[int]) -> None:
            try:
                with Client(front.port, timeout=30) as client:
                    body = bytes(range(256)) * 4000
                    for size in share:
                        response = client.request("POST", "/upload", body[:size])
                        assert response.status == 200
            except BaseException as exc:
                errors.append(exc)

        shares = [sizes[i::clients] for i in range(clients)]
        threads = [threading.Thread(target=work, args=(share,)) for share in shares]
        for thread in threads:
            thread.start()
        upload(front.port, 50 * MiB)  # one request far larger than the mirror's buffer
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        growth = front.vm("VmHWM") - baseline
        assert growth < STALLED_MIRROR_GROWTH, f"RSS grew {growth / MiB:.1f} MiB"
    counts = _target_counts(front)
    assert counts["dropped"] > 0
    assert counts["mirrored"] + counts["dropped"] + counts["failed"] == 1 + len(sizes) + 1


def test_a_raw_mirror_that_never_reads_keeps_few_connections_and_drops(tmp_path: Path) -> None:
    # Small keep-alive requests: each mirror connection's kernel buffers (outside the
    # proxy's RSS) could take about a thousand of them. Unanswered copies count against
    # the mirror's cap wherever they are, so the pool is not churned into new connections.
    clients, per_client = 4, 2500
    cookie = "Cookie: " + "c" * 1000 + "\r\n"
    with (
        AppServer() as app,
        Stalled() as stalled,
        proxy(tmp_path, app.port, f"127.0.0.1:{stalled.port}") as front,
    ):
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                with Client(front.port, timeout=30) as client:
                    for i in range(per_client):
                        response = client.request("GET", f"/s/{worker}/{i}", headers=cookie)
                        assert response.body == f"GET /s/{worker}/{i}".encode()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        accepted = stalled.accepted
    # Before the fix: a new connection per 1000 copies, 10 here.
    assert accepted <= DEFAULT_MIRROR_CONNECTIONS + 2, f"{accepted} mirror connections"
    counts = _target_counts(front)
    assert counts["dropped"] > 0
    assert counts["mirrored"] + counts["dropped"] + counts["failed"] == clients * per_client


def _target_counts(front: Proxy) -> dict[str, int]:
    """The last stats line (logged at exit), as numbers."""
    last = front.stats()[-1]
    return {key: int(last[key]) for key in ("requests", "mirrored", "dropped", "failed")}
