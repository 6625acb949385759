"""An example web app for `make demo` and the wrapper's tests.

A WSGI app served by the standard library (wsgiref, one thread per request) on the port
given as its first argument, else $PORT. It answers every method with a short JSON summary
of the request. `/sleep/SECONDS` answers after a pause (an in-flight request during a
shutdown) and `/exit/STATUS` makes the process exit with that status after answering.
On SIGTERM or SIGINT it stops accepting, finishes the requests in flight, and exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

StartResponse = Callable[..., Any]
_exit_status: list[int] = []


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI application: echo what was asked, in JSON."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    path = environ.get("PATH_INFO", "/")
    parts = path.strip("/").split("/")
    if parts[0] == "sleep" and len(parts) == 2:
        time.sleep(float(parts[1]))
    if parts[0] == "exit" and len(parts) == 2:
        _exit_status.append(int(parts[1]))
    payload = json.dumps(
        {"method": environ["REQUEST_METHOD"], "path": path, "body_bytes": len(body)}
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    )
    return [payload]


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = False  # finish in-flight requests on close
    block_on_close = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("EXAMPLE_APP_QUIET") != "1":
            super().log_message(format, *args)


def main(argv: list[str]) -> int:
    port = int(argv[1] if len(argv) > 1 else os.environ["PORT"])
    server = make_server(
        "0.0.0.0", port, app, server_class=ThreadingServer, handler_class=QuietHandler
    )
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return, so it cannot run in this thread.
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watch_exit() -> None:
        while not stopping.is_set():
            if _exit_status:
                time.sleep(0.05)  # let the answer go out first
                os._exit(_exit_status[0])
            time.sleep(0.02)

    threading.Thread(target=watch_exit, daemon=True).start()
    print(f"example app listening on 0.0.0.0:{port}", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()  # joins the request threads: in-flight requests complete
    print("example app stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
