"""Shadow comparison end to end: the real wrapper, proxy, replayer and report (issue 10).

Production is the wrapper's app; the baseline destination behaves like it but for
environment noise (a JSON field naming the environment, request ids, Date, session
tokens); the candidate has three real regressions: `name` changed on GET /users/:id, a
500 on GET /orders/:id, 50 ms more on GET /slow (tests/compare/shadow_app.py). A few
hundred requests go through $PORT, the wrapper is stopped with SIGTERM, and its output is
read by `python -m traffic_duplicator.report --json`.

Secrets travel everywhere they can: an Authorization header, a cookie and a `password`
JSON field on requests, session tokens and cookies in responses, and a password in the
candidate's output URL. None may appear in the wrapper's output or in the report.

`python -m tests.compare.test_end_to_end` runs the scenario once and prints the report's
table (the README's example comes from it).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from tests.compare.apps import app_argv, report_rows, shadow_app, wait_compared
from tests.compare.shadow_app import REGRESSION_MS, SESSION_SECRET
from tests.support import engine_argv, python_env
from tests.wrapper.harness import running_wrapper, write_options

PASSWORD = "hunter2-Pa55word"  # the request's Authorization, cookie and JSON password
URL_PASSWORD = "s3cr3t-deploy-Key"  # in the candidate's output URL
SECRETS = (PASSWORD, URL_PASSWORD, SESSION_SECRET)
IDS = range(1, 41)  # 40 ids per route with an id: one row each, not 40
SLOW = 40
LOGINS = 20
ROUTES = {
    "GET /users/:id": len(IDS),
    "GET /orders/:id": len(IDS),
    "GET /products/:id": len(IDS),
    "GET /health": len(IDS),
    "GET /slow": SLOW,
    "POST /login": LOGINS,
}
REQUESTS = sum(ROUTES.values())
CLIENTS = 4
# Seconds between two requests of a client: real users think. A tight loop would make the
# replayer's loop (and with it the latency it measures) wait for CPU on a 2-core machine
# shared with the proxy, the app, both destinations and the clients.
PACE = 0.01
# The one latency assertion: the candidate's median shift on GET /slow.
SHIFT_TOLERANCE_MS = 20


Work = list[tuple[str, str, bytes | None]]


def requests() -> tuple[Work, Work]:
    """The GETs, sent from CLIENTS connections at once; then the logins, from one."""
    gets: Work = []
    for i in IDS:
        gets += [("GET", f"/users/{i}?page=2", None), ("GET", f"/orders/{i}", None)]
        gets += [("GET", f"/products/{i}", None), ("GET", "/health", None)]
    gets += [("GET", "/slow", None)] * SLOW
    login = json.dumps({"user": "ada", "password": PASSWORD}).encode()
    return gets, [("POST", "/login", login)] * LOGINS


def send_all(port: int) -> None:
    """Every request, each answered before its connection sends the next.

    The logins go last, alone: while a request with a body streams to the replayer on one of
    the proxy's hop connections, a response due on that connection is not sent (the proxy
    counts it `compare_dropped`), so concurrent uploads would make the counts vary.
    """
    gets, logins = requests()
    failures: list[str] = []
    headers = {"Authorization": f"Bearer {PASSWORD}", "Cookie": f"session={PASSWORD}"}

    def client(share: Work) -> None:
        conn = HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for method, target, body in share:
                conn.request(method, target, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    failures.append(f"{method} {target}: {response.status}")
                time.sleep(PACE)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(gets[n::CLIENTS],)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    client(logins)
    assert not failures, failures


def run_scenario(workdir: Path) -> Path:
    """Production behind the wrapper, a baseline and a candidate; the wrapper's stderr."""
    with shadow_app("baseline") as base, shadow_app("candidate") as cand:
        baseline = f"http://127.0.0.1:{base}"
        write_options(
            workdir,
            f"--output-http {baseline}",
            f"--output-http http://deploy:{URL_PASSWORD}@127.0.0.1:{cand}",
        )
        env = {
            "TRAFFIC_DUPLICATOR_COMPARE": "on",
            "TRAFFIC_DUPLICATOR_COMPARE_BASELINE": baseline,
            # Short intervals, so the test sees when everything was compared.
            "TRAFFIC_DUPLICATOR_COMPARE_INTERVAL": "1",
            "DYNO": "web.1",
        }
        with running_wrapper(workdir, app_argv("$PORT", "production"), extra=env) as wrapper:
            # Serving, without the GET / that wait_serving() would add to the traffic.
            wrapper.wait_event(20, at="ready", process="proxy")
            send_all(wrapper.port)
            # Each request is answered by both destinations: wait for every answer.
            wait_compared(wrapper.stderr_path, 2 * REQUESTS, timeout=30)
            wrapper.proc.send_signal(signal.SIGTERM)
            wrapper.wait_exit(30)
        return wrapper.stderr_path


def report(log: Path, *flags: str) -> str:
    """The real report command on the wrapper's output."""
    result = subprocess.run(
        engine_argv("traffic_duplicator.report", *flags, str(log)),
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_report_flags_exactly_the_regressions_and_nothing_of_the_noise(
    tmp_path: Path,
) -> None:
    log = run_scenario(tmp_path)
    output = report(log, "--json")
    rows: list[dict[str, Any]] = json.loads(output)["rows"]
    assert rows == report_rows(log)  # the CLI and the module agree

    # No secret anywhere: wrapper output (app, proxy, replayer), report.
    everything = log.read_text() + (tmp_path / "wrapper.out").read_text() + output
    everything += report(log, "--plain")
    for secret in SECRETS:
        assert secret not in everything

    # One row per destination and route, not per URL; every request compared once.
    by_role = Counter(row["role"] for row in rows)
    assert by_role == {"baseline": len(ROUTES), "candidate": len(ROUTES)}
    table = {(row["role"], row["route"]): row for row in rows}
    for (_, route), row in table.items():
        assert route in ROUTES, route
        assert (row["compared"], row["errors"], row["dropped"]) == (ROUTES[route], 0, 0), row

    # Exactly the regressions flagged, and for the right reason.
    flagged = {
        route: row["flagged_fields"] for (role, route), row in table.items() if row["flagged"]
    }
    assert set(flagged) == {"GET /users/:id", "GET /orders/:id", "GET /slow"}
    assert all(table[("candidate", route)]["flagged"] for route in flagged)
    assert flagged["GET /users/:id"] == ["body:$.name"]
    assert "status" in flagged["GET /orders/:id"]
    assert set(flagged["GET /orders/:id"]) <= {"status", "body", "header:content-type"}
    assert table[("candidate", "GET /orders/:id")]["status_mismatch"] == len(IDS)
    assert flagged["GET /slow"] == ["latency"]

    # The noise is measured on both sides, and flagged on neither.
    for route in ("GET /users/:id", "GET /orders/:id", "GET /slow", "POST /login"):
        for role in ("baseline", "candidate"):
            if (role, route) == ("candidate", "GET /orders/:id"):
                continue  # its 500 is HTML: compared whole, not by JSON path
            top = {entry["field"]: entry["count"] for entry in table[(role, route)]["top_fields"]}
            assert top["body:$.env"] == top["body:$.request_id"] == ROUTES[route], top
        for noise in ("body:$.env", "body:$.request_id", "body:$.token"):
            assert noise not in table[("candidate", route)]["flagged_fields"]
    assert not table[("candidate", "POST /login")]["flagged"]

    # Routes that answer alike: no difference at all, on either side.
    for route in ("GET /health", "GET /products/:id"):
        for role in ("baseline", "candidate"):
            row = table[(role, route)]
            mismatches = (row["status_mismatch"], row["header_mismatch"], row["body_mismatch"])
            assert mismatches == (0, 0, 0), row

    # The latency shift on GET /slow, from the medians: the candidate's shift from
    # production beyond the baseline's own (both destinations measured by the replayer on
    # the same busy machine, as the report's latency rule does).
    shifts = {}
    for role in ("baseline", "candidate"):
        slow = table[(role, "GET /slow")]
        shifts[role] = slow["shadow_ms"]["p50"] - slow["production_ms"]["p50"]
    shift = shifts["candidate"] - shifts["baseline"]
    assert abs(shift - REGRESSION_MS) <= SHIFT_TOLERANCE_MS, shifts


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        sys.stdout.write(report(run_scenario(Path(scratch)), "--plain"))
