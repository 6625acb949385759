"""An app that answers an upload early and half-closes (a lingering close), on both cores.

The app reads the request head, answers `413` with `Connection: close`, shuts its sending
side and reads on. Closing the client then would reset it (its upload bytes are still
unread in the proxy's socket) and the reset discards the answer before the client reads
it; the proxy half-closes the client instead, as the app did, and relays the rest of the
upload until the client's EOF or the lingering bound (pair.LINGERING_TIMEOUT).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from pathlib import Path

import pytest

from tests.proxy.servers import (
    CORES,
    TOO_LARGE,
    RefusesUploads,
    proxy,
    upload_forever,
)
from tests.support import wait_until

BODY = 16 << 20  # larger than every socket buffer on the way


def read_to_end(client: socket.socket) -> tuple[bytes, str]:
    """What `client` receives, and how its stream ended: "eof" or "reset"."""
    received = b""
    try:
        while data := client.recv(65536):
            received += data
    except ConnectionResetError:
        return received, "reset"
    return received, "eof"


@pytest.mark.parametrize("core", CORES)
def test_a_client_that_sends_its_whole_upload_first_reads_the_early_answer(
    tmp_path: Path, core: str
) -> None:
    # As Python's http.client does: the whole body with sendall, then the response.
    with RefusesUploads() as app, proxy(tmp_path, app.port, core=core) as front:
        for done in range(1, 3):
            with socket.create_connection(("127.0.0.1", front.port), timeout=20) as client:
                head = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % BODY
                client.sendall(head + b"u" * BODY)
                assert read_to_end(client) == (TOO_LARGE, "eof")
            # The client's close ends the lingering: the app connection closes too.
            wait_until(lambda done=done: len(app.ended) == done, timeout=20)


@pytest.mark.parametrize("core", CORES)
def test_the_lingering_ends_at_its_bound_when_the_client_never_stops_sending(
    tmp_path: Path, core: str
) -> None:
    with (
        RefusesUploads() as app,
        proxy(tmp_path, app.port, core=core) as front,
        socket.create_connection(("127.0.0.1", front.port), timeout=20) as client,
    ):
        failures: list[OSError | None] = []
        uploader = threading.Thread(
            target=lambda: failures.append(upload_forever(client, chunks=1 << 20)),
            daemon=True,
        )
        uploader.start()
        try:
            assert read_to_end(client) == (TOO_LARGE, "eof")
            # The client goes on sending: only the bound ends the connection, and
            # the client's next sends fail.
            uploader.join(60)
            assert not uploader.is_alive()
            assert isinstance(failures[0], OSError)
            wait_until(lambda: len(app.ended) == 1, timeout=20)
        finally:
            stop(client, uploader)


def stop(client: socket.socket, uploader: threading.Thread) -> None:
    with contextlib.suppress(OSError):
        client.shutdown(socket.SHUT_RDWR)  # the uploader stops, if it did not
    uploader.join(10)


@pytest.mark.parametrize("core", CORES)
def test_the_drain_timeout_cuts_a_lingering_pair(tmp_path: Path, core: str) -> None:
    with (
        RefusesUploads() as app,
        proxy(tmp_path, app.port, args=("--drain-timeout", "0.5"), core=core) as front,
        socket.create_connection(("127.0.0.1", front.port), timeout=20) as client,
    ):
        uploader = threading.Thread(
            target=upload_forever, args=(client,), kwargs={"chunks": 1 << 20}, daemon=True
        )
        uploader.start()
        try:
            assert read_to_end(client) == (TOO_LARGE, "eof")
            # Lingering now: a drain waits for it as for a request in flight, and its
            # timeout (well before LINGERING_TIMEOUT) cuts it.
            front.proc.send_signal(signal.SIGTERM)
            assert front.proc.wait(20) == 0
        finally:
            stop(client, uploader)
    assert front.log().splitlines()[-1] == "at=exit status=0 cut=1"
