"""The built-in replayer against GoReplay itself: the same capture, the same options, one recorder.

GoReplay is the reference for what `config/gor.options` means, so the strongest check of
the replayer is gor's own behaviour. Set `TRAFFIC_DUPLICATOR_GOR_ORACLE` to a real gor 1.x
binary (one is never shipped with this repository) and each case below is replayed from
one `--input-file` through gor and through `python -m traffic_duplicator.replay`; both must
deliver the same requests, byte for byte, to a recording destination. Without the
variable these tests are skipped; the pinned expectations in the options and modifier
tests say what gor answered when they were written (GoReplay 1.2.0).

Where this product deliberately differs from gor 1.2 (an absolute-form target is sent in
origin-form, RFC 9112 §3.2.2; a path on `--output-http` is a prefix; a Host that
`--http-rewrite-header` rewrote is kept, where gor 1.2 overwrites it with the output's host
and so breaks the example in its own `--help`), the cases avoid it; those rules have tests
of their own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import RecordingServer, python_env
from traffic_duplicator import gorproto

ORACLE = os.environ.get("TRAFFIC_DUPLICATOR_GOR_ORACLE", "")

pytestmark = pytest.mark.skipif(
    not ORACLE or not os.access(ORACLE, os.X_OK),
    reason="set TRAFFIC_DUPLICATOR_GOR_ORACLE to a real GoReplay 1.x binary to compare with it",
)


def request(text: str, body: bytes = b"") -> bytes:
    head = text.strip("\n").replace("\n", "\r\n") + "\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


BASE = [
    request("GET /users/7?id=7&sort=asc HTTP/1.1\nHost: www.example.com\nX-A: val\nX-B: hello"),
    request("GET /health HTTP/1.1\nHost: www.example.com\nUser-Agent: probe/1.0"),
    request("POST /api/v1/items HTTP/1.1\nHost: www.example.com\nX-A: other", b"hello"),
    request("GET /Admin/Panel HTTP/1.1\nHost: www.example.com\nAccept: text/html"),
]


AUTHORIZED = (
    # customer1:secret and admin:secret, Basic-encoded.
    request(
        "GET /a HTTP/1.1\nHost: www.example.com\nAuthorization: Basic Y3VzdG9tZXIxOnNlY3JldA=="
    ),
    request("GET /b HTTP/1.1\nHost: www.example.com\nAuthorization: Basic YWRtaW46c2VjcmV0"),
)


@dataclass(frozen=True)
class Case:
    name: str
    options: tuple[str, ...]
    requests: tuple[bytes, ...] = tuple(BASE)


CASES = [
    # GoReplay #934 and #965: a pattern that can match the empty string.
    Case("rewrite-header-empty-match", ("--http-rewrite-header", "X-A: (.*),x1$1")),
    Case("rewrite-header-replace-all", ("--http-rewrite-header", "X-B:(.*),BBB")),
    Case("rewrite-url-empty-match", ("--http-rewrite-url", "(.*):/shadow$1")),
    # Template forms: `$1x` names the group `1x` (empty), `${1}x` is group 1 then x.
    Case("template-forms", ("--http-rewrite-header", "X-A: (v)(x)?(al),[$1x][${1}x][$2][$3]")),
    Case("named-group", ("--http-rewrite-url", "/users/(?P<id>[0-9]+):/people/${id}")),
    Case("case-insensitive-mid-pattern", ("--http-rewrite-url", "/(?i)admin/panel:/staff")),
    # gor splits a URL rewrite at its first colon, so a POSIX class only fits in a filter.
    Case("posix-class", ("--http-allow-url", "^/[[:alpha:]]+/[[:digit:]]+")),
    Case("unicode-class", ("--http-rewrite-url", r"/(\pL+)/Panel:/$1")),
    Case("end-of-text", ("--http-allow-url", r"^/health\z")),
    Case("quoted-literal", ("--http-disallow-url", r"\Q/api/v1\E")),
    Case("set-header", ("--http-set-header", "X-Shadow: 1", "--http-set-header", "X-A: set")),
    Case("set-param", ("--http-set-param", "id=8", "--http-set-param", "api_key=1")),
    Case("allow-header", ("--http-allow-header", "X-A: ^val$")),
    Case("disallow-header", ("--http-disallow-header", "User-Agent: probe")),
    Case("allow-method", ("--http-allow-method", "POST")),
    Case("header-limiter", ("--http-header-limiter", "X-A: 50%")),
    Case("param-limiter", ("--http-param-limiter", "id: 50%")),
    Case("original-host", ("--http-original-host",)),
    Case("basic-auth-filter", ("--http-basic-auth-filter", "^customer[0-9]"), AUTHORIZED),
    Case("set-host", ("--http-set-header", "Host: staging.example.com")),
]


def _capture(path: Path, requests: tuple[bytes, ...]) -> None:
    with path.open("wb") as out:
        for index, payload in enumerate(requests):
            ident = b"%024x" % (index + 1)
            out.write(gorproto.encode(payload, message_id=ident, timestamp_ns=10**18 + index))


def _replay(
    argv: list[str], capture: Path, options: tuple[str, ...], env: dict[str, str]
) -> list[bytes]:
    with RecordingServer() as destination:
        output = f"http://127.0.0.1:{destination.port}"
        command = [*argv, "--input-file", str(capture), "--exit-after", "2s", "--output-http"]
        done = subprocess.run(
            [*command, output, *options],
            capture_output=True,
            timeout=60,
            env=env,
            check=False,
        )
        # Both wait for the destination's answers before exiting: all is recorded.
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        seen = destination.snapshot()
    port = str(destination.port).encode()
    return sorted(re.sub(rb":%s\b" % port, b":PORT", item.raw) for item in seen)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_replayer_delivers_what_gor_delivers(case: Case, tmp_path: Path) -> None:
    capture = tmp_path / "capture.gor"
    _capture(capture, case.requests)
    env = python_env()
    from_gor = _replay([ORACLE], capture, case.options, env)
    ours = _replay([sys.executable, "-m", "traffic_duplicator.replay"], capture, case.options, env)
    assert from_gor, "gor delivered nothing: the case tests nothing"
    assert ours == from_gor
