"""Secret-named headers and secret-named app flags through the real wrapper (masking fixes).

Production (the wrapper's app) and both destinations answer `GET /account` with
`X-Csrf-Token`, `X-Session-Id`, `X-Auth-Token` and `WWW-Authenticate` of their own
environment, and the candidate answers it 401 (tests/compare/shadow_app.py). The app is
started with `--password=…`, `--api-token …` and a database URL with a password.

The `at=compare` lines must keep each header's name and mismatch count (the log masking
once took `x-auth-token=4` for a credential, and the report dropped the route), the report
must read them without a warning, and no header value or app password may be printed.
"""

from __future__ import annotations

import json
import signal
import subprocess
from http.client import HTTPConnection
from pathlib import Path

from tests.compare.apps import app_argv, compare_lines, shadow_app, wait_compared
from tests.compare.shadow_app import HEADER_SECRET, SECRET_HEADERS
from tests.support import engine_argv, python_env
from tests.wrapper.harness import running_wrapper, write_options

REQUESTS = 6
APP_SECRETS = ("PW3-app-password", "TOK2-app-token", "DBPW1-db-password")
APP_FLAGS = [
    f"--password={APP_SECRETS[0]}",
    *("--api-token", APP_SECRETS[1]),
    *("--db", f"postgres://u:{APP_SECRETS[2]}@h/db"),
]  # shadow_app.py reads only its first two arguments


def send(port: int) -> None:
    conn = HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(REQUESTS):
            conn.request("GET", "/account")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
    finally:
        conn.close()


def run(workdir: Path) -> str:
    """The wrapper's stderr after REQUESTS comparisons on each destination."""
    with shadow_app("baseline") as base, shadow_app("candidate") as cand:
        baseline = f"http://127.0.0.1:{base}"
        write_options(
            workdir, f"--output-http {baseline}", f"--output-http http://127.0.0.1:{cand}"
        )
        env = {
            "TRAFFIC_DUPLICATOR_COMPARE": "on",
            "TRAFFIC_DUPLICATOR_COMPARE_BASELINE": baseline,
            "TRAFFIC_DUPLICATOR_COMPARE_INTERVAL": "1",
        }
        command = [*app_argv("$PORT", "production"), *APP_FLAGS]
        with running_wrapper(workdir, command, extra=env) as wrapper:
            wrapper.wait_event(20, at="ready", process="proxy")
            send(wrapper.port)
            wait_compared(wrapper.stderr_path, 2 * REQUESTS, timeout=30)
            wrapper.proc.send_signal(signal.SIGTERM)
            wrapper.wait_exit(30)
        return wrapper.stderr()


def test_secret_named_headers_and_app_flags_are_masked_but_counts_kept(tmp_path: Path) -> None:
    log = run(tmp_path)
    everything = log + (tmp_path / "wrapper.out").read_text()
    for secret in (HEADER_SECRET, *APP_SECRETS):
        assert secret not in everything

    # The app's command: both forms of a secret-named flag masked, the rest as written.
    [start] = [line for line in log.splitlines() if "at=start process=app " in line]
    assert "--password=*** --api-token *** --db postgres://u:***@h/db" in start, start

    # Each secret-named header's name and count are in the candidate's compare lines.
    candidate = [line for line in compare_lines(log) if "role=candidate" in line]
    assert candidate and not any("=***" in line for line in candidate), candidate
    assert all(f"header:{name.lower()}=" in "\n".join(candidate) for name in SECRET_HEADERS)

    # The report reads every line, and the route is there with its status mismatches.
    path = tmp_path / "wrapper.err"
    result = subprocess.run(
        engine_argv("traffic_duplicator.report", "--json", str(path)),
        env=python_env(), capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert HEADER_SECRET not in result.stdout
    rows = {(row["role"], row["route"]): row for row in json.loads(result.stdout)["rows"]}
    row = rows[("candidate", "GET /account")]
    assert (row["compared"], row["status_mismatch"]) == (REQUESTS, REQUESTS)
    top = {entry["field"]: entry["count"] for entry in row["top_fields"]}
    for name in SECRET_HEADERS:
        assert top[f"header:{name.lower()}"] == REQUESTS, top
    assert row["flagged"]
