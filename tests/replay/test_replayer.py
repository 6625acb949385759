"""The replayer as a process, with real loopback destinations."""

from __future__ import annotations

import base64
import http.server
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import ClassVar

from tests.replay.helpers import OK, CertFiles, TlsRecordingServer, get, replayer, send, wait_count
from tests.support import RecordingServer, engine_argv, free_port, python_env, wait_until
from tests.support import running as running_process
from traffic_duplicator import gorproto

POST = (
    b"POST /orders?id=7 HTTP/1.1\r\nHost: app.example.com\r\nContent-Length: 11\r\n\r\nhello world"
)
ODD = (
    b"PATCH /x%20y HTTP/1.1\r\nhost: app.example.com\r\nX-CaSe:  kept  \r\n"
    b"x-dup: 1\r\nx-dup: 2\r\nContent-Type:application/json\r\nContent-Length: 2\r\n\r\n{}"
)
CHUNKED = (
    b"PUT /upload HTTP/1.1\r\nHost: app.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nTrailer-A: b\r\n\r\n"
)


def test_replays_requests_byte_for_byte_with_original_host(
    tmp_path: Path, dest: RecordingServer
) -> None:
    requests = [POST, ODD, CHUNKED, get("/a?b=1", "Accept: */*\r\n")]
    with replayer(
        tmp_path, "--output-http", f"http://127.0.0.1:{dest.port}", "--http-original-host"
    ) as rp:
        assert send(rp.port, *requests) == OK * len(requests)
        wait_count(dest, len(requests))
        assert rp.stop() == 0
    assert sorted(r.raw for r in dest.snapshot()) == sorted(requests)
    assert rp.stats(f"http://127.0.0.1:{dest.port}")["sent"] == "4"


def test_host_is_set_to_the_output_host_by_default(tmp_path: Path, dest: RecordingServer) -> None:
    with replayer(tmp_path, "--output-http", f"127.0.0.1:{dest.port}") as rp:
        send(rp.port, POST)
        wait_count(dest, 1)
    assert dest.snapshot()[0].raw == POST.replace(
        b"app.example.com", f"127.0.0.1:{dest.port}".encode()
    )


def test_rewrites_and_filters_end_to_end(tmp_path: Path, dest: RecordingServer) -> None:
    args = [
        "--output-http",
        f"http://127.0.0.1:{dest.port}",
        "--http-set-header",
        "Host: staging.example.com",
        "--output-http-header",  # the old name still works
        "X-Mirror: 1",
        "--http-rewrite-url",
        "/v1/(.*):/v2/$1",
        "--http-set-param",
        "api_key=test",
        "--http-allow-method",
        "GET",
        "--http-disallow-url",
        "^/v1/private",
        "--http-allow-header",
        "X-Api:^v1",
    ]
    with replayer(tmp_path, *args) as rp:
        send(
            rp.port,
            get("/v1/users?page=2", "X-Api: v1\r\n"),
            get("/v1/users", "X-Api: v2\r\n"),  # header does not match
            get("/v1/users"),  # header missing
            get("/v1/private", "X-Api: v1\r\n"),
            get("/v1/posted", "X-Api: v1\r\n", method="POST"),
        )
        wait_count(dest, 1)
        assert rp.stop() == 0
    (only,) = dest.snapshot()
    # A header the request lacked goes first, as gor's proto.AddHeader puts it.
    assert only.raw == (
        b"GET /v2/users?page=2&api_key=test HTTP/1.1\r\nX-Mirror: 1\r\n"
        b"Host: staging.example.com\r\nX-Api: v1\r\n\r\n"
    )
    assert rp.stats()["filtered"] == "4"
    assert "at=deprecated flag=--output-http-header use=--http-set-header" in rp.log()


def test_every_output_gets_every_request_and_split_round_robins(tmp_path: Path) -> None:
    with RecordingServer() as a, RecordingServer() as b:
        outputs = [
            "--output-http",
            f"http://127.0.0.1:{a.port}",
            "--output-http",
            f"http://127.0.0.1:{b.port}",
        ]
        with replayer(tmp_path, *outputs) as rp:
            send(rp.port, *[get(f"/{i}") for i in range(6)])
            wait_count(a, 6)
            wait_count(b, 6)
        with replayer(tmp_path, *outputs, "--split-output") as rp:
            send(rp.port, *[get(f"/split{i}") for i in range(6)])
            wait_until(lambda: a.count() + b.count() == 18)
            assert rp.stop() == 0
        assert a.count() == 9 and b.count() == 9


def test_a_dead_or_stuck_output_costs_only_its_own_counters(
    tmp_path: Path, dest: RecordingServer
) -> None:
    dead = free_port()
    with RecordingServer(read=False) as stuck:
        args = [
            *("--output-http", f"http://127.0.0.1:{dead}"),
            *("--output-http", f"http://127.0.0.1:{stuck.port}"),
            *("--output-http", f"http://127.0.0.1:{dest.port}"),
            *(
                "--output-http-timeout",
                "1s",
                "--output-http-queue-len",
                "100",
                "--flush-timeout",
                "2s",
            ),
        ]
        with replayer(tmp_path, *args) as rp:
            # The sender is never held up: each batch is answered within send()'s own cap,
            # though the stuck output alone would take its 1 s timeout per request.
            for batch in range(5):
                assert send(rp.port, *[get(f"/{batch}/{i}") for i in range(20)]) == OK * 20
            wait_count(dest, 100)
            assert rp.stop() == 0
    live = rp.stats(f"http://127.0.0.1:{dest.port}")
    assert (live["sent"], live["errors"], live["dropped"]) == ("100", "0", "0")
    for port in (dead, stuck.port):
        broken = rp.stats(f"http://127.0.0.1:{port}")
        assert broken["sent"] == "0"
        assert int(broken["errors"]) + int(broken["dropped"]) == 100, broken
    assert "at=error" in rp.log()


def test_queue_overflow_drops_and_counts(tmp_path: Path) -> None:
    with RecordingServer(delay=0.5) as slow:
        args = ["--output-http", f"http://127.0.0.1:{slow.port}", "--output-http-workers", "1"]
        with replayer(
            tmp_path, *args, "--output-http-queue-len", "3", "--flush-timeout", "5s"
        ) as rp:
            assert send(rp.port, *[get(f"/{i}") for i in range(50)]) == OK * 50
            assert rp.stop() == 0
    stats = rp.stats(f"http://127.0.0.1:{slow.port}")
    # Three queued (plus one in flight once the connection is up) are flushed on SIGTERM;
    # the rest were dropped at once, without holding up the sender.
    assert int(stats["sent"]) in (3, 4)
    assert int(stats["sent"]) + int(stats["dropped"]) == 50
    assert slow.count() == int(stats["sent"])


def test_tls_outputs_verify_by_default(
    tmp_path: Path, tls_dest: TlsRecordingServer, test_cert: CertFiles
) -> None:
    url = f"https://127.0.0.1:{tls_dest.port}"
    trusted = {"SSL_CERT_FILE": str(test_cert.cert)}
    with replayer(tmp_path, "--output-http", url, env=trusted) as rp:
        send(rp.port, POST)
        wait_count(tls_dest, 1)
    assert tls_dest.snapshot()[0].raw == POST.replace(
        b"app.example.com", f"127.0.0.1:{tls_dest.port}".encode()
    )

    untrusted = {"SSL_CERT_FILE": "/nonexistent"}
    with replayer(tmp_path, "--output-http", url, "--flush-timeout", "2s", env=untrusted) as rp:
        send(rp.port, POST)
        wait_until(lambda: tls_dest.handshake_failures > 0)
        assert rp.stop() == 0
    assert rp.stats(url)["sent"] == "0"
    assert "TLS certificate" in rp.log()

    with replayer(tmp_path, "--output-http", url, "--output-http-skip-verify", env=untrusted) as rp:
        send(rp.port, POST)
        wait_count(tls_dest, 2)


def test_rate_limit_drops_the_excess(tmp_path: Path, dest: RecordingServer) -> None:
    with replayer(tmp_path, "--output-http", f"http://127.0.0.1:{dest.port}|10") as rp:
        # The replayer counts in windows of its monotonic clock's whole seconds, which is
        # this process's clock too (CLOCK_MONOTONIC): note the windows the bursts fell in.
        first_window = int(time.monotonic())
        for i in range(5):  # 25 requests a burst, 5 bursts spread over a few windows
            send(rp.port, *[get(f"/{i}/{j}") for j in range(25)])
            time.sleep(0.45)
        windows = int(time.monotonic()) - first_window + 1
        assert rp.stop() == 0
    stats = rp.stats(f"http://127.0.0.1:{dest.port}")
    sent, limited = int(stats["sent"]), int(stats["limited"])
    assert sent + limited == 125
    # At most 10 a window get through, however slowly the machine sent them.
    assert 10 <= sent <= 10 * windows, (stats, windows)
    assert dest.count() == sent


def test_percentage_limit_samples(tmp_path: Path, dest: RecordingServer) -> None:
    with replayer(tmp_path, "--output-http", f"http://127.0.0.1:{dest.port}|25%") as rp:
        send(rp.port, *[get(f"/{i}") for i in range(400)])
        assert rp.stop() == 0
    sent = int(rp.stats(f"http://127.0.0.1:{dest.port}")["sent"])
    # Binomial(400, 0.25): mean 100, sd 8.7; +-5 sd cannot flake and still rejects 0 % or 100 %.
    assert 56 <= sent <= 144


GOR_HEADER = re.compile(rb"1 ([0-9a-f]{24}) (\d{19}) 0\n")


def test_output_file_is_goreplays_format_and_replays(tmp_path: Path, dest: RecordingServer) -> None:
    capture = tmp_path / "requests.gor"
    requests = [POST, ODD, CHUNKED]
    before = time.time_ns()
    with replayer(tmp_path, "--output-file", str(capture)) as rp:
        for request in requests:  # one at a time, so the file order is known
            send(rp.port, request)
        assert rp.stop() == 0
    data = capture.read_bytes()
    frames = data.split(gorproto.SEPARATOR)
    assert frames[-1] == b""  # every message ends with the separator
    for frame, request in zip(frames[:-1], requests, strict=True):
        header = GOR_HEADER.match(frame)
        assert header is not None, frame[:60]
        assert before <= int(header.group(2)) <= time.time_ns()
        assert frame[header.end() :] == request

    # Replaying the capture sends the same bytes; the process ends with its input.
    argv = engine_argv(
        "traffic_duplicator.replay",
        "--input-file",
        f"{capture}|1000%",
        "--output-http",
        f"http://127.0.0.1:{dest.port}",
        "--http-original-host",
    )
    done = subprocess.run(argv, env=python_env(), capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(r.raw for r in dest.snapshot()) == sorted(requests)


def test_input_tcp_takes_gor_framing(tmp_path: Path, dest: RecordingServer) -> None:
    args = ["--output-http", f"http://127.0.0.1:{dest.port}", "--http-original-host"]
    with replayer(tmp_path, *args, input_flag="--input-tcp") as rp:
        with socket.create_connection(("127.0.0.1", rp.port)) as sock:
            sock.sendall(
                gorproto.encode(POST)
                + gorproto.encode(b"HTTP/1.1 200 OK\r\n\r\n", kind=gorproto.RESPONSE)
                + gorproto.encode(CHUNKED)
                + b"not a frame"
                + gorproto.SEPARATOR
            )
        wait_count(dest, 2)
        assert rp.stop() == 0
    assert sorted(r.raw for r in dest.snapshot()) == sorted([POST, CHUNKED])
    assert rp.stats()["malformed"] == "1"


def test_output_stdout_prints_frames(tmp_path: Path) -> None:
    port = free_port()
    argv = engine_argv(
        "traffic_duplicator.replay", "--input-http", f"127.0.0.1:{port}", "--output-stdout"
    )
    proc = subprocess.Popen(argv, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: _connectable(port))
        send(port, POST)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert GOR_HEADER.match(out)
    assert out.endswith(POST + gorproto.SEPARATOR)


def _connectable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_malformed_requests_get_400_and_are_counted(tmp_path: Path, dest: RecordingServer) -> None:
    with replayer(tmp_path, "--output-http", f"http://127.0.0.1:{dest.port}") as rp:
        reply = send(rp.port, get("/ok"), b"NOT HTTP AT ALL\r\n\r\n")
        assert (
            reply
            == OK + b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        assert send(rp.port, get("/still-up")) == OK
        wait_count(dest, 2)
        assert rp.stop() == 0
    assert rp.stats()["malformed"] == "1"


def test_sigterm_flushes_queued_requests_then_exits_0(tmp_path: Path) -> None:
    with RecordingServer(delay=0.1) as slow:
        args = ["--output-http", f"http://127.0.0.1:{slow.port}", "--output-http-workers", "2"]
        with replayer(tmp_path, *args) as rp:
            send(rp.port, *[get(f"/{i}") for i in range(20)])
            assert slow.count() < 20  # still queued when the signal arrives
            assert rp.stop() == 0
        assert slow.count() == 20
    assert re.search(r"at=flush pending=\d+ timeout=20", rp.log())
    assert "at=stop process=replayer abandoned=0 status=0" in rp.log()


def test_flush_timeout_bounds_shutdown(tmp_path: Path) -> None:
    with RecordingServer(read=False) as stuck:
        # Without the flush timeout the stuck output would hold the exit for 10 minutes;
        # stop() waits 30 s at most.
        args = ["--output-http", f"http://127.0.0.1:{stuck.port}", "--output-http-timeout", "10m"]
        with replayer(tmp_path, *args, "--flush-timeout", "1s") as rp:
            send(rp.port, *[get(f"/{i}") for i in range(5)])
            wait_until(lambda: stuck.accepted > 0)
            assert rp.stop(timeout=30) == 0
    assert re.search(r"at=flush pending=\d+ timeout=1\b", rp.log())
    assert re.search(r"at=stop process=replayer abandoned=[1-5] status=0", rp.log())
    assert "Traceback" not in rp.log()


def test_exit_after_stops_by_itself(tmp_path: Path, dest: RecordingServer) -> None:
    with replayer(
        tmp_path, "--output-http", f"http://127.0.0.1:{dest.port}", "--exit-after", "1s"
    ) as rp:
        assert rp.proc.wait(15) == 0


def test_periodic_stats_lines(tmp_path: Path, dest: RecordingServer) -> None:
    args = [
        "--output-http",
        f"http://127.0.0.1:{dest.port}",
        "--stats",
        "--output-http-stats-ms",
        "200",
    ]
    with replayer(tmp_path, *args) as rp:
        send(rp.port, get("/"))
        wait_until(
            lambda: len(re.findall(r"^at=stats output=\S+ queue=0 sent=1 ", rp.log(), re.M)) >= 2
        )


def run_replayer(*args: str) -> subprocess.CompletedProcess[str]:
    argv = engine_argv("traffic_duplicator.replay", *args)
    return subprocess.run(
        argv, env=python_env(), capture_output=True, text=True, timeout=30, check=False
    )


def test_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_replayer("--input-http", f"127.0.0.1:{port}", "--output-null")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"port {port} is already in use" in result.stderr


def test_bad_flags_are_one_line_and_exit_2() -> None:
    cases = {
        (
            "--input-http",
            ":1",
            "--output-htp",
            "x",
        ): "unknown flag --output-htp (did you mean --output-http?)",
        (
            "--input-http",
            ":1",
            "--output-http",
            "http://a",
            "--middleware",
            "x",
        ): "needs a real gor binary",
        ("--output-http", "http://a"): "no input; add --input-http",
        ("--input-http", "nope", "--output-null"): "is not a TCP port",
    }
    for args, expected in cases.items():
        result = run_replayer(*args)
        assert result.returncode == 2, args
        assert expected in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_an_input_file_that_cannot_be_read_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = {
        str(tmp_path / "missing.gor"): "No such file or directory",
        str(tmp_path / "*.gor"): "No such file or directory",  # a pattern matching nothing
        str(tmp_path): "Is a directory",
    }
    for path, reason in cases.items():
        result = run_replayer("--input-file", path, "--output-null")
        assert result.returncode == 2, (path, result)
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"--input-file {path}: cannot read it ({reason}); ")


def test_a_capture_removed_while_it_loops_ends_its_input_with_an_error_event(
    tmp_path: Path, dest: RecordingServer
) -> None:
    capture = tmp_path / "loop.gor"
    capture.write_bytes(gorproto.encode(get("/again"), timestamp_ns=1))
    argv = engine_argv(
        "traffic_duplicator.replay",
        "--input-file",
        str(capture),
        "--input-file-loop",
        "--output-http",
        f"http://127.0.0.1:{dest.port}",
    )
    log_path = tmp_path / "replayer.log"
    with log_path.open("wb") as log, running_process(argv, stdout=log, stderr=log) as proc:
        wait_until(lambda: len(dest.snapshot()) >= 2)  # it went round at least once
        capture.unlink()
        assert proc.wait(timeout=30) == 0
    text = log_path.read_text()
    assert f'at=error input=file path={capture} error="No such file or directory"' in text, text
    assert "at=stop process=replayer" in text


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: ClassVar[list[str]] = []

    def _answer(self, body: bool) -> None:
        self.hits.append(f"{self.command} {self.path}")
        if self.path.startswith("/old"):
            self.send_response(302)
            self.send_header("Location", "/new" + self.path[4:])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        if body:
            self.wfile.write(b"hello")

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer(body=True)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_redirects_and_head_responses_with_a_stdlib_server(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Handler.hits.clear()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        args = ["--output-http", url, "--output-http-redirects", "1", "--output-http-workers", "1"]
        with replayer(tmp_path, *args) as rp:
            send(
                rp.port,
                get("/old?x=1", method="HEAD"),
                get("/a"),
                POST.replace(b"/orders", b"/old"),
            )
            wait_until(lambda: len(_Handler.hits) == 5)
            assert rp.stop() == 0
    finally:
        server.shutdown()
        server.server_close()
    # The HEAD answer has a Content-Length but no body: the next request still goes through.
    assert sorted(_Handler.hits) == sorted(
        ["HEAD /old?x=1", "HEAD /new?x=1", "GET /a", "POST /old?id=7", "GET /new?id=7"]
    )
    stats = rp.stats(url)
    assert (stats["sent"], stats["errors"], stats["status_2xx"]) == ("3", "0", "3")


def test_expect_continue_and_http10_clients(tmp_path: Path, dest: RecordingServer) -> None:
    with replayer(tmp_path, "--output-http", f"http://127.0.0.1:{dest.port}") as rp:
        with socket.create_connection(("127.0.0.1", rp.port), timeout=5) as sock:
            sock.sendall(
                b"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
            )
            assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(b"abc")
            assert sock.recv(100) == OK
        with socket.create_connection(("127.0.0.1", rp.port), timeout=5) as sock:
            sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
            reply = b""
            while chunk := sock.recv(100):  # the replayer closes after answering
                reply += chunk
            assert reply == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        wait_count(dest, 2)


def test_empty_host_listens_on_every_interface(tmp_path: Path, dest: RecordingServer) -> None:
    port = free_port()
    argv = engine_argv(
        "traffic_duplicator.replay",
        "--input-http",
        f":{port}",
        "--output-http",
        f"http://127.0.0.1:{dest.port}",
    )
    with (tmp_path / "log").open("wb") as log, running_process(argv, stderr=log) as proc:
        wait_until(lambda: _connectable(port))
        assert send(port, get("/any")) == OK
        wait_count(dest, 1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_remaining_filters_and_verbose_end_to_end(tmp_path: Path, dest: RecordingServer) -> None:
    allowed_auth = "Authorization: Basic " + base64.b64encode(b"customer7:pw").decode() + "\r\n"
    denied_auth = "Authorization: Basic " + base64.b64encode(b"admin:pw").decode() + "\r\n"
    args = [
        *("--output-http", f"http://127.0.0.1:{dest.port}", "--http-original-host", "--verbose"),
        *("--http-allow-url", "^/api/", "--http-disallow-header", "User-Agent: bot"),
        *("--http-header-limiter", "X-Drop: 0%", "--http-param-limiter", "uid: 0%"),
        *("--http-basic-auth-filter", "^customer[0-9]"),
        *("--http-rewrite-header", "X-Env: prod-(.*),staging-$1"),
    ]
    with replayer(tmp_path, *args) as rp:
        send(
            rp.port,
            get("/api/kept", "X-Env: prod-eu\r\n" + allowed_auth),
            get("/other"),  # URL not allowed
            get("/api/bot", "User-Agent: a bot\r\n"),
            get("/api/sampled-out", "X-Drop: anything\r\n"),
            get("/api/q?uid=42"),
            get("/api/admin", denied_auth),
        )
        wait_count(dest, 1)
        assert rp.stop() == 0
    (only,) = dest.snapshot()
    assert only.raw == get("/api/kept", "X-Env: staging-eu\r\n" + allowed_auth)
    assert rp.stats()["filtered"] == "5"
    assert re.search(
        r'at=replayed output=\S+ request="GET /api/kept HTTP/1.1" status=200 ms=', rp.log()
    )


def test_unwritable_output_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "requests.gor"
    result = run_replayer("--input-http", f"127.0.0.1:{free_port()}", "--output-file", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"--output-file {path}: cannot open it (No such file or directory); "
        "check that the directory exists and is writable\n"
    )
