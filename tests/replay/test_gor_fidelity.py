"""The replayer as a process, fed the option lines of GoReplay issues: the exact bytes it
sends to a recording destination on 127.0.0.1, and the lines it prints."""

from __future__ import annotations

import base64
import re
import signal
import subprocess
from pathlib import Path

from tests.replay.helpers import OK, TlsRecordingServer, get, replayer, send, wait_count
from tests.support import (
    RecordedRequest,
    RecordingServer,
    engine_argv,
    python_env,
    wait_until,
)
from tests.wrapper.harness import (
    SHUTDOWN_TIMEOUT,
    example_app,
    request,
    running_wrapper,
    write_options,
)
from traffic_duplicator.options import parse_options

# config/gor.options lines as users wrote them in goreplay #934 and #965.
REWRITES = """\
--http-rewrite-header 'X-A: (.*),x1$1'
--http-rewrite-header 'X-B:(.*),BBB'
--http-rewrite-url '(.*):/shadow$1'
"""


def test_rewrites_whose_pattern_matches_empty_apply_once(
    tmp_path: Path, dest: RecordingServer
) -> None:
    argv = parse_options(REWRITES).argv  # the words the wrapper hands the replayer
    request = (
        b"GET /users?id=7 HTTP/1.1\r\nHost: app.example.com\r\nX-A: val\r\nX-B: anything\r\n\r\n"
    )
    with replayer(tmp_path, "--output-http", f"http://127.0.0.1:{dest.port}", *argv) as rp:
        assert send(rp.port, request) == OK
        wait_count(dest, 1)
        assert rp.stop() == 0
    assert dest.snapshot()[0].raw == (
        b"GET /shadow/users?id=7 HTTP/1.1\r\nHost: 127.0.0.1:" + str(dest.port).encode() + b"\r\n"
        b"X-A: x1val\r\nX-B: BBB\r\n\r\n"
    )


def test_a_pattern_go_refuses_stops_the_replayer_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        engine_argv(
            "traffic_duplicator.replay",
            *("--input-http", "127.0.0.1:1", "--output-null"),
            *("--http-allow-url", "^/api/(?!internal)"),
        ),
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "replayer argument 4: --http-allow-url: '^/api/(?!internal)' is not a valid regular "
        "expression (a lookahead `(?!` is not supported by Go's RE2, which gor uses)\n"
    )


# --- the output URL and its secrets ---------------------------------------------------------

PASSWORD = "pa55-Word"
BASIC = b"Basic " + base64.b64encode(f"mirror:{PASSWORD}".encode())


def test_userinfo_path_and_absolute_targets_go_out_as_gor_sends_them(
    tmp_path: Path, dest: RecordingServer
) -> None:
    url = f"http://mirror:{PASSWORD}@127.0.0.1:{dest.port}/shadow/"
    requests = [
        b"GET /users?id=7 HTTP/1.1\r\nHost: www.example.com\r\n\r\n",
        # Absolute form (RFC 9112 §3.2.2), carrying production's own credentials.
        b"GET http://www.example.com/users?id=8 HTTP/1.1\r\nHost: www.example.com\r\n"
        b"Authorization: Basic cHJvZDpwcm9k\r\n\r\n",
    ]
    with replayer(tmp_path, "--output-http", url, "--stats") as rp:
        assert send(rp.port, *requests) == OK * 2
        wait_count(dest, 2)
        assert rp.stop() == 0
    host = f"127.0.0.1:{dest.port}".encode()
    # A new header goes first, an existing one is replaced in place (gor's proto.SetHeader;
    # GoReplay 1.2.0 sends exactly these bytes).
    assert sorted(r.raw for r in dest.snapshot()) == [
        b"GET /shadow/users?id=7 HTTP/1.1\r\nAuthorization: " + BASIC + b"\r\nHost: " + host
        + b"\r\n\r\n",
        b"GET /shadow/users?id=8 HTTP/1.1\r\nHost: " + host + b"\r\nAuthorization: " + BASIC
        + b"\r\n\r\n",
    ]  # fmt: skip
    shown = f"http://mirror:***@127.0.0.1:{dest.port}/shadow"
    assert rp.stats(shown)["sent"] == "2"
    assert PASSWORD not in rp.log()


def test_original_host_keeps_an_absolute_target(tmp_path: Path, dest: RecordingServer) -> None:
    absolute = b"GET http://www.example.com/users?id=8 HTTP/1.1\r\nHost: www.example.com\r\n\r\n"
    args = ["--output-http", f"http://127.0.0.1:{dest.port}/shadow", "--http-original-host"]
    with replayer(tmp_path, *args) as rp:
        assert send(rp.port, absolute) == OK
        wait_count(dest, 1)
    assert dest.snapshot()[0].raw == absolute


def test_a_certificate_error_names_skip_verify(
    tmp_path: Path, tls_dest: TlsRecordingServer
) -> None:
    url = f"https://127.0.0.1:{tls_dest.port}"
    untrusted = {"SSL_CERT_FILE": "/nonexistent"}
    with replayer(tmp_path, "--output-http", url, "--flush-timeout", "2s", env=untrusted) as rp:
        send(rp.port, get("/"))
        wait_until(lambda: "at=error" in rp.log(), message="no error line")
        assert rp.stop() == 0
    (line,) = [line for line in rp.log().splitlines() if line.startswith("at=error")]
    assert re.fullmatch(
        rf'at=error output={re.escape(url)} error="connect: TLS certificate: [^;"]+; fix the '
        r"certificate, or add --output-http-skip-verify to not check it \(gor before 1\.3 did "
        r'not\)"',
        line,
    ), line


def copies(dest: RecordingServer) -> list[RecordedRequest]:
    return [r for r in dest.snapshot() if r.target.startswith(b"/shadow/items/")]


def test_the_wrapper_sends_credentials_and_never_prints_them(
    tmp_path: Path, dest: RecordingServer
) -> None:
    write_options(
        tmp_path,
        f"--output-http 'http://mirror:{PASSWORD}@127.0.0.1:{dest.port}/shadow'",
        "--http-set-header 'X-Api-Key: key-Secret'",
    )
    with running_wrapper(tmp_path, example_app()) as wrapper:
        wrapper.wait_serving()
        assert request(wrapper.port, "GET", "/items/1?q=1") == 200
        wait_until(lambda: copies(dest), 20, message="no copy of /items/1")
        wrapper.proc.send_signal(signal.SIGTERM)
        wrapper.wait_exit(SHUTDOWN_TIMEOUT + 10)
    (copy,) = copies(dest)  # the wrapper's own readiness probes were mirrored too
    headers = {name.lower(): value for name, value in copy.headers}
    assert copy.target == b"/shadow/items/1?q=1"
    assert (headers[b"authorization"], headers[b"x-api-key"]) == (BASIC, b"key-Secret")
    printed = wrapper.stdout() + wrapper.stderr()
    assert f"output=http://mirror:***@127.0.0.1:{dest.port}/shadow" in printed
    assert PASSWORD not in printed
    assert "key-Secret" not in printed
