"""Production isolation: whatever a mirror target does, every primary request succeeds."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.proxy.servers import AppServer, Client, ResettingServer, proxy
from tests.support import RecordingServer, free_port

WORKERS = 4
REQUESTS_PER_WORKER = 40


@contextlib.contextmanager
def refusing() -> Iterator[int]:
    yield free_port()  # nothing listens there


@contextlib.contextmanager
def resetting(after: int = 0) -> Iterator[int]:
    with ResettingServer(after) as server:
        yield server.port


@contextlib.contextmanager
def recording(**knobs: object) -> Iterator[int]:
    with RecordingServer(**knobs) as server:  # type: ignore[arg-type]
        yield server.port


FAULTS: dict[str, Callable[[], contextlib.AbstractContextManager[int]]] = {
    "refuses": refusing,
    "resets": resetting,
    "never_reads": lambda: recording(read=False),
    "answers_slowly": lambda: recording(delay=0.5),
    "dies_mid_stream": lambda: resetting(after=300_000),
}


def workload(port: int) -> list[BaseException]:
    """Keep-alive clients sending small and large requests, checking every answer."""
    errors: list[BaseException] = []
    body = bytes(range(256)) * 1024  # 256 KiB: arrives in several reads

    def work(worker: int) -> None:
        try:
            with Client(port, timeout=10) as client:
                for i in range(REQUESTS_PER_WORKER):
                    if i % 10 == 9:
                        response = client.request("POST", "/upload", body)
                        assert response.body.startswith(b"%d " % len(body))
                    else:
                        response = client.request("GET", f"/fault/{worker}/{i}")
                        assert response.body == f"GET /fault/{worker}/{i}".encode()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_misbehaving_target_never_fails_a_primary_request(tmp_path: Path, fault: str) -> None:
    with (
        AppServer() as app,
        FAULTS[fault]() as bad,
        RecordingServer() as good,
        proxy(tmp_path, app.port, f"127.0.0.1:{bad}", f"127.0.0.1:{good.port}") as front,
    ):
        started = time.monotonic()
        assert workload(front.port) == []
        elapsed = time.monotonic() - started
        # A healthy target next to the bad one gets every request.
        total = WORKERS * REQUESTS_PER_WORKER
        deadline = time.monotonic() + 10
        while good.count() < total and time.monotonic() < deadline:
            time.sleep(0.05)
        assert good.count() == total
    lines = front.stats()
    bad_counts = next(line for line in lines if line["target"] == f"127.0.0.1:{bad}")
    good_counts = next(line for line in lines if line["target"] == f"127.0.0.1:{good.port}")
    assert good_counts["mirrored"] == str(total)
    handled = sum(int(bad_counts[key]) for key in ("mirrored", "dropped", "failed"))
    assert handled == total
    if fault == "refuses":
        assert bad_counts["failed"] == str(total)
    # Errors are rate limited: a handful of lines, not one per request.
    errors = [line for line in front.log().splitlines() if f"target=127.0.0.1:{bad}" in line]
    assert len(errors) <= 3 + elapsed / 5 + len(lines), errors
