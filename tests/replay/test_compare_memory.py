"""With comparison on, the replayer's memory stays bounded on hostile traffic (issue 10).

One replayer, two outputs: a destination that answers at once (tests/compare/fixed_app.py)
and one that accepts connections and never reads them. 100,000 requests to distinct URLs
arrive on --input-tcp, each followed by production's response (type 2). Whatever waits
for its pair, sits in a queue or names a route has a limit, so RSS (VmRSS, then VmHWM, the
peak, from /proc/PID/status) grows by less than GROWTH_CAP however many requests come;
holding them would take well over 100 MB. Past 100 routes an output's new routes are
counted as `other`.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

from tests.compare.apps import compare_lines, production_frame, report_rows, request_frame
from tests.compare.fixed_app import RESPONSE
from tests.replay.helpers import replayer
from tests.support import RecordingServer, free_port, python_env, running, wait_for_port, wait_until
from traffic_duplicator.compare.aggregate import DEFAULT_MAX_ROUTES

MiB = 1 << 20
URLS = 100_000
WARM_UP = 2_000
BATCH = 1_000
# Bounds, roughly: 10,000 pending pairs or 32 MiB, 1,000 queued requests per output,
# 256 connections, 100 routes, with small responses here; measured: about 10 MiB.
GROWTH_CAP = 32 * MiB
FIXED_APP = Path(__file__).resolve().parent.parent / "compare" / "fixed_app.py"


def distinct_path(n: int) -> str:
    """A path of letters only, so that no placeholder rule folds two of them together."""
    letters = ""
    n += 1
    while n:
        n, digit = divmod(n - 1, 26)
        letters = chr(ord("a") + digit) + letters
    return f"/w/{letters}"


def pairs(start: int, count: int) -> bytes:
    frames = []
    for n in range(start, start + count):
        message_id = b"%024x" % n
        request = f"GET {distinct_path(n)} HTTP/1.1\r\nHost: app\r\n\r\n".encode()
        frames.append(request_frame(message_id, request))
        frames.append(production_frame(message_id, RESPONSE, 2.0))
    return b"".join(frames)


def vm(pid: int, field: str) -> int:
    """A /proc/PID/status memory field, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def test_rss_stays_bounded_with_a_silent_destination_and_100k_distinct_urls(
    tmp_path: Path,
) -> None:
    fast_port = free_port()
    env = {
        "TRAFFIC_DUPLICATOR_COMPARE": "on",
        "TRAFFIC_DUPLICATOR_COMPARE_INTERVAL": "2",
        "TRAFFIC_DUPLICATOR_COMPARE_BASELINE": "1",
    }
    with (
        running([sys.executable, str(FIXED_APP), str(fast_port)], env=python_env()),
        RecordingServer(read=False) as silent,
    ):
        wait_for_port(fast_port)
        outputs = (
            "--output-http", f"http://127.0.0.1:{fast_port}",
            "--output-http", f"http://127.0.0.1:{silent.port}",
            "--output-http-timeout", "1s",
        )  # fmt: skip
        with (
            replayer(tmp_path, *outputs, input_flag="--input-tcp", env=env) as rep,
            socket.create_connection(("127.0.0.1", rep.port), timeout=60) as hop,
        ):
            pid = rep.proc.pid
            hop.sendall(pairs(0, WARM_UP))
            wait_until(lambda: compare_lines(rep.log()), 20, message=rep.log()[-2000:])
            time.sleep(1)  # the silent output's first requests time out, and settle
            before = vm(pid, "VmRSS")
            for start in range(WARM_UP, URLS, BATCH):
                hop.sendall(pairs(start, BATCH))  # TCP paces us to the replayer's reading
            peak_sent = vm(pid, "VmHWM")
            hop.close()
            time.sleep(2.5)  # an interval more: the last requests time out and are counted
            peak = vm(pid, "VmHWM")
            assert rep.stop() == 0

    growth = peak - before
    assert growth < GROWTH_CAP, f"RSS grew {growth / MiB:.1f} MiB (peak while sending: "
    f"{(peak_sent - before) / MiB:.1f} MiB)"
    rows = report_rows(rep.log_path)
    for role in ("baseline", "candidate"):
        routes = [row for row in rows if row["role"] == role]
        # Each output names at most its cap of routes; everything after is `other`.
        assert len(routes) <= DEFAULT_MAX_ROUTES + 1
        assert any(row["route"] == "other" for row in routes), [r["route"] for r in routes]
    answered = sum(row["compared"] for row in rows if row["role"] == "baseline")
    silent_rows = [row for row in rows if row["role"] == "candidate"]
    # The answering destination was compared all along (the overload drops many copies:
    # the sender is as fast as TCP allows, and the replayer's queues drop, never block).
    assert answered >= 1_000
    assert sum(row["errors"] for row in silent_rows) > 0  # the silent one timed out
    print(f"RSS growth {growth / MiB:.1f} MiB over {URLS} requests; compared {answered}")
