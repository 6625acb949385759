"""How real HTTP/1.1 servers read the ambiguous requests of test_ambiguous: a probe.

Each server answers every request it processes with `<method> <path> <body length>`
(nginx: `<method> <path>`). A case is sent after a valid request and before a
"smuggled" one that asks to close, and the client reads everything the server answers
until it closes.

    python -m tests.http1.families      prints the table the README records

gunicorn (gthread worker, so keep-alive is on) comes with the test extra; node and
nginx are used when they are on the machine.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

from tests.http1.test_ambiguous import BEFORE, CASES
from tests.support import free_port, wait_for_port

GUNICORN_APP = """\
def app(environ, start_response):
    body = environ["wsgi.input"].read()
    out = ("%s %s %d" % (environ["REQUEST_METHOD"], environ["PATH_INFO"], len(body))).encode()
    start_response("200 OK", [("Content-Length", str(len(out)))])
    return [out]
"""

NODE_APP = """\
const http = require("http");
http.createServer((req, res) => {
  let n = 0;
  req.on("data", (c) => { n += c.length; });
  req.on("end", () => {
    const out = `${req.method} ${req.url} ${n}`;
    res.writeHead(200, { "Content-Length": Buffer.byteLength(out) });
    res.end(out);
  });
}).listen(Number(process.argv[2]), "127.0.0.1");
"""

# Every temporary path in the work directory: nginx refuses to start without them.
TEMP_PATHS = "".join(
    f"{kind}_temp_path {{dir}}/{kind}; "
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
)
NGINX_CONF = (
    "daemon off; master_process off; pid {dir}/nginx.pid; error_log {dir}/error.log crit;\n"
    "events {{ worker_connections 64; }}\n"
    "http {{ access_log off; " + TEMP_PATHS + "\n"
    '  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "$request_method $uri"; }} }}\n'
    "}}\n"
)


@contextlib.contextmanager
def serving(argv: list[str], port: int, cwd: Path) -> Iterator[int]:
    proc = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for_port(port, timeout=20)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def gunicorn(workdir: Path) -> Iterator[int]:
    (workdir / "probe_app.py").write_text(GUNICORN_APP)
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "2"]
    argv += ["-b", f"127.0.0.1:{port}", "probe_app:app"]
    with serving(argv, port, workdir):
        yield port


@contextlib.contextmanager
def node(workdir: Path) -> Iterator[int]:
    (workdir / "probe_app.js").write_text(NODE_APP)
    port = free_port()
    with serving(["node", "probe_app.js", str(port)], port, workdir):
        yield port


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


@contextlib.contextmanager
def nginx(workdir: Path) -> Iterator[int]:
    binary = nginx_binary()
    assert binary is not None
    port = free_port()
    config = workdir / "nginx.conf"
    config.write_text(NGINX_CONF.format(dir=workdir, port=port))
    with serving([binary, "-p", str(workdir), "-c", str(config)], port, workdir):
        yield port


# The server closes after it, so that reading ends without waiting for a timeout.
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

FAMILIES = {"gunicorn": gunicorn, "node": node, "nginx": nginx}


def available() -> list[str]:
    """The families this machine can run."""
    found = ["gunicorn"]
    if shutil.which("node"):
        found.append("node")
    if nginx_binary():
        found.append("nginx")
    return found


def exchange(port: int, stream: bytes, timeout: float = 10.0) -> bytes:
    """Send `stream` and return every byte the server answers until it closes.

    A server still waiting after `timeout` (for a body it will never get) gave its answer.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(stream)
        received = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while data := sock.recv(65536):
                received += data
    return received


def answers(received: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of each response; bodies are short and Content-Length framed."""
    out = []
    for match in re.finditer(rb"HTTP/1\.[01] (\d{3})[^\r]*\r\n(.*?)\r\n\r\n", received, re.S):
        length = re.search(rb"(?i)content-length: *(\d+)", match.group(2))
        start = match.end()
        body = received[start : start + int(length.group(1))] if length else b""
        out.append((int(match.group(1)), body))
    return out


def outcome(port: int, request: bytes) -> str:
    """How the server read `request` (sent between BEFORE and SMUGGLED), in a few words."""
    replies = answers(exchange(port, BEFORE + request + SMUGGLED, timeout=2.0))
    replies = [(status, body) for status, body in replies if b"/before" not in body]
    if not replies:
        return "closes"
    status, body = replies[0]
    words = str(status) if status >= 400 else f"200 `{body.decode(errors='replace')}`"
    if any(b"/smuggled" in body for _, body in replies):
        words += ", then /smuggled"
    return words


# Requests we frame and mirror, pipelined on one connection: every server must read the
# same requests, with the same bodies, as we do.
CONTROLS = [
    b"GET /c/1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /c/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 005\r\n\r\nhello",
    b"POST /c/3 HTTP/1.1\r\nHost: x\r\ntransfer-encoding: Chunked\r\n\r\n"
    b'3;a=1;b="x y"\r\nabc\r\n00002\r\nde\r\n0\r\nX-T: t\r\n\r\n',
    b"POST /c/4 HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
    b"GET /c/5 HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n",
    b"GET /c/6 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
]
CONTROL_BODIES = [0, 5, 5, 2, 0, 0]


def control_replies(port: int) -> list[tuple[int, bytes]]:
    return answers(exchange(port, b"".join(CONTROLS)))


def table(families: list[str]) -> dict[str, dict[str, str]]:
    """case id -> family -> outcome, for every case of test_ambiguous."""
    rows: dict[str, dict[str, str]] = {case: {} for case, _, _ in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        for family in families:
            workdir = Path(tmp) / family
            workdir.mkdir()
            with FAMILIES[family](workdir) as port:
                for case, request, _ in CASES:
                    rows[case][family] = outcome(port, request)
    return rows


def main() -> None:
    families = available()
    rows = table(families)
    reasons = {case: reason for case, _, reason in CASES}
    print("| case | ours | " + " | ".join(families) + " |")
    print("|---" * (len(families) + 2) + "|")
    for case, cells in rows.items():
        print(f"| {case} | `{reasons[case]}` | " + " | ".join(cells[f] for f in families) + " |")
    print(
        textwrap.dedent(f"""
        gunicorn {subprocess.getoutput(f"{sys.executable} -m gunicorn --version")}
        node {subprocess.getoutput("node --version") if "node" in families else "-"}
        {subprocess.getoutput(f"{nginx_binary()} -v") if "nginx" in families else ""}""")
    )


if __name__ == "__main__":
    main()
