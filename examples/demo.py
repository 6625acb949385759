"""`make demo`: the wrapper around the example app, mirroring to two local destinations.

1. Starts two destination servers that record what they receive.
2. Starts `start-traffic-duplicator python examples/app.py $PORT` in a scratch app
   directory whose config/gor.options names both destinations.
3. Round 1: sends a mix of traffic through $PORT.
4. Round 2: kills the replayer with SIGKILL a third of the way into more traffic: the app
   keeps answering and the wrapper restarts the replayer.
5. Round 3: more traffic once mirroring works again.
6. Prints what each destination received, then stops the wrapper with SIGTERM, as the
   platform does, and checks that no process is left behind.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP = HERE / "app.py"
HEADER = "X-Mirrored-By"
SHUTDOWN_TIMEOUT = 10
WAIT = 15.0
WARMUP = "/warmup"
ROUNDS = {
    "1": "1. steady traffic",
    "2": "2. replayer SIGKILLed",
    "3": "3. after its restart",
}
Key = tuple[str, str]  # (round, kind of request)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A replayer killed mid-connection resets it; that is part of the demo, not an error.
        pass


class Destination:
    """An HTTP server on 127.0.0.1 that answers 200 and records each request."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.received: list[tuple[str, str, str]] = []  # method, path, marker header
        destination = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with destination.lock:
                    destination.received.append(
                        (self.command, self.path, self.headers.get(HEADER, ""))
                    )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = do_PUT = record

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def copies(self) -> list[tuple[str, str, str]]:
        """What was received, without the demo's own warm-up probes."""
        with self.lock:
            return [r for r in self.received if not r[1].startswith(WARMUP)]

    def got_warmup(self) -> bool:
        with self.lock:
            return any(path.startswith(WARMUP) for _, path, _ in self.received)

    def forget_warmups(self) -> None:
        with self.lock:
            self.received = [r for r in self.received if not r[1].startswith(WARMUP)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port_block(count: int = 3) -> int:
    """A base port with `count` free ports after it, below the ephemeral range (32768 and up
    on Linux), where no outgoing connection can be holding one of them."""
    for _ in range(500):
        base = random.randrange(20000, 32768 - count)
        try:
            for offset in range(count):
                with socket.socket() as sock:
                    sock.bind(("0.0.0.0", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


def call(port: int, method: str, path: str, body: bytes | None = None) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def traffic(round_name: str) -> Iterator[tuple[str, str, str, bytes | None]]:
    """(kind, method, path, body): a small shop's worth of requests."""
    for i in range(30):
        yield "GET /products/:id", "GET", f"/products/{i}?round={round_name}", None
    for i in range(15):
        order = {"order": i, "items": list(range(i % 5 + 1)), "note": "x" * (i * 40)}
        yield "POST /orders", "POST", f"/orders?round={round_name}", json.dumps(order).encode()
    for i in range(5):
        yield "PUT /carts/:id", "PUT", f"/carts/{i}?round={round_name}", b'{"qty": 2}'
    for _ in range(10):
        yield "GET /health (filtered)", "GET", f"/health?round={round_name}", None


def kind_of(method: str, path: str) -> str:
    for prefix, kind in (
        ("/products/", "GET /products/:id"),
        ("/orders", "POST /orders"),
        ("/carts/", "PUT /carts/:id"),
        ("/health", "GET /health (filtered)"),
    ):
        if path.startswith(prefix):
            return kind
    return f"{method} {path}"


def round_of(path: str) -> str:
    return path.rpartition("round=")[2]


def wait_for(predicate: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit(f"demo: gave up waiting for {what}")


class Tally:
    """Requests sent and answered by the app, per round and kind."""

    def __init__(self) -> None:
        self.sent: Counter[Key] = Counter()
        self.answered: Counter[Key] = Counter()

    def send_round(
        self, port: int, round_name: str, at_one_third: Callable[[], None] | None = None
    ) -> None:
        requests = list(traffic(round_name))
        for index, (kind, method, path, body) in enumerate(requests):
            if at_one_third is not None and index == len(requests) // 3:
                at_one_third()
            self.sent[(round_name, kind)] += 1
            self.answered[(round_name, kind)] += call(port, method, path, body) == 200


def print_table(tally: Tally, destinations: list[Destination]) -> None:
    received = [
        Counter((round_of(p), kind_of(m, p)) for m, p, _ in d.copies()) for d in destinations
    ]
    header = ["round", "request", "sent", "app 200", *(d.name for d in destinations)]
    rows: list[list[str]] = []
    previous = ""
    for key in tally.sent:
        label = ROUNDS[key[0]] if key[0] != previous else ""
        previous = key[0]
        rows.append(
            [
                label,
                key[1],
                str(tally.sent[key]),
                str(tally.answered[key]),
                *(str(r[key]) for r in received),
            ]
        )
    total = ["total", "", str(sum(tally.sent.values())), str(sum(tally.answered.values()))]
    total += [str(sum(r.values())) for r in received]
    widths = [max(len(row[i]) for row in [header, *rows, total]) for i in range(len(header))]
    rule = "       " + "  ".join("-" * w for w in widths)

    def show(row: list[str]) -> None:
        cells = (c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        print("       " + "  ".join(cells))

    show(header)
    print(rule)
    for row in rows:
        show(row)
    print(rule)
    show(total)


def pid_from_log(log_path: Path, process: str) -> int:
    """The pid of the last `at=start process=NAME` event in the wrapper's log."""
    pid = 0
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("traffic_duplicator at=start ") and f" process={process} " in line:
            pid = int(line.split(" pid=")[1].split()[0])
    return pid


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def descendants(pid: int) -> list[int]:
    """Live descendants of `pid`, from /proc (none where there is no /proc)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in tree.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def write_app_dir(destinations: list[Destination]) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="traffic-duplicator-demo-"))
    options = workdir / "config" / "gor.options"
    options.parent.mkdir()
    options.write_text(
        "# Where the copies go: two local destinations.\n"
        + "".join(f"--output-http http://127.0.0.1:{d.port}\n" for d in destinations)
        + f"--http-set-header '{HEADER}: traffic-duplicator'\n"
        "# Health checks are not mirrored.\n"
        "--http-disallow-url ^/health\n"
    )
    return workdir


def wait_until_mirroring(port: int, destinations: list[Destination]) -> None:
    """Copies made while the replayer (re)starts are dropped by design: probe until one lands."""
    for destination in destinations:
        destination.forget_warmups()
    wait_for(
        lambda: call(port, "GET", WARMUP) and all(d.got_warmup() for d in destinations), "mirroring"
    )


def main() -> int:
    started = time.monotonic()
    destinations = [Destination("destination-1"), Destination("destination-2")]
    workdir = write_app_dir(destinations)
    port = free_port_block()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAFFIC_DUPLICATOR_")}
    env.update(
        PORT=str(port),
        TRAFFIC_DUPLICATOR_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT),
        EXAMPLE_APP_QUIET="1",
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    script = Path(sys.executable).parent / "start-traffic-duplicator"
    wrapper_argv = (
        [str(script)] if script.exists() else [sys.executable, "-m", "traffic_duplicator"]
    )
    log_path = workdir / "wrapper.log"
    print(f"-----> start-traffic-duplicator python examples/app.py {port}   (PORT={port})")
    print(f"       proxy on {port}, app on {port + 1}, replayer on {port + 2}")
    ports = ", ".join(str(d.port) for d in destinations)
    print(f"       app directory {workdir}, destinations on {ports}")
    with open(log_path, "wb") as log:
        wrapper = subprocess.Popen(
            [*wrapper_argv, sys.executable, str(APP), str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    status: int | None = None
    tally = Tally()
    try:
        wait_for(
            lambda: call(port, "GET", "/") == 200 or wrapper.poll() is not None,
            "the proxy on $PORT",
        )
        if wrapper.poll() is not None:
            raise SystemExit(f"demo: the wrapper exited early:\n{log_path.read_text()}")
        wait_until_mirroring(port, destinations)
        print("-----> Round 1: 60 requests through $PORT")
        tally.send_round(port, "1")

        print("-----> Round 2: 60 more, the replayer SIGKILLed a third of the way in")
        replayer = pid_from_log(log_path, "replayer")
        tally.send_round(port, "2", at_one_third=lambda: os.kill(replayer, signal.SIGKILL))
        wait_for(lambda: pid_from_log(log_path, "replayer") != replayer, "the replayer's restart")
        print(f"       replayer {replayer} restarted as {pid_from_log(log_path, 'replayer')}")

        wait_until_mirroring(port, destinations)
        print("-----> Round 3: 60 more once mirroring works again")
        tally.send_round(port, "3")
        expected = sum(
            n for (r, kind), n in tally.sent.items() if r == "3" and "filtered" not in kind
        )
        wait_for(
            lambda: all(
                sum(1 for _, p, _ in d.copies() if round_of(p) == "3") >= expected
                for d in destinations
            ),
            "round 3's copies",
        )
        time.sleep(0.3)  # count any straggler too

        print()
        print_table(tally, destinations)
        print()
        marked = all(h == "traffic-duplicator" for d in destinations for *_, h in d.copies())
        print(
            f"       every copy carries '{HEADER}: traffic-duplicator': {'yes' if marked else 'NO'}"
        )
        print("       round 2's copies made while the replayer was down were dropped, not queued")
        print()

        print("-----> SIGTERM to the wrapper, as the platform does")
        children = descendants(wrapper.pid)
        stopping = time.monotonic()
        os.kill(wrapper.pid, signal.SIGTERM)
        status = wrapper.wait(SHUTDOWN_TIMEOUT + 5)
        left = [pid for pid in children if alive(pid)]
        took = time.monotonic() - stopping
        print(f"       exit status {status} in {took:.1f}s; processes left: {len(left)}")
    finally:
        if wrapper.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(wrapper.pid, signal.SIGKILL)
            wrapper.wait(5)
        for destination in destinations:
            destination.stop()
    print()
    print("-----> The wrapper's own events")
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("traffic_duplicator "):
            print(f"       {line}")
    print(f"       full log: {log_path}")
    print(f"-----> Done in {time.monotonic() - started:.1f}s")
    app_answered_all = tally.answered == tally.sent
    return 0 if status == 0 and app_answered_all else 1


if __name__ == "__main__":
    sys.exit(main())
