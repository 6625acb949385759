"""The replayer as a process, fed the option lines of GoReplay issues: the exact bytes it
sends to a recording destination on 127.0.0.1, and the lines it prints."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.replay.helpers import OK, replayer, send, wait_count
from tests.support import RecordingServer, engine_argv, python_env
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
