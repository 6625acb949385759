"""The replayer pairs production's responses (type 2) with each destination's, per route.

Real replayer processes and real destinations (tests/compare/shadow_app.py) on 127.0.0.1;
production's responses are real answers of the production role, framed as the tee proxy
frames them with --compare. Results are read with the report's own code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compare.apps import (
    closing,
    compare_lines,
    exchange,
    production_frame,
    report_rows,
    request_bytes,
    request_frame,
    send_frames,
    shadow_app,
    wait_compared,
)
from tests.replay.helpers import replayer
from tests.support import engine_argv, free_port, python_env, running
from traffic_duplicator import gorproto

COMPARE_ENV = {
    "TRAFFIC_DUPLICATOR_COMPARE": "on",
    "TRAFFIC_DUPLICATOR_COMPARE_INTERVAL": "1",
    "DYNO": "web.7",
}
PASSWORD = "hunter2-Secret"
TARGETS = [f"/users/{i}" for i in range(1, 9)] + [f"/orders/{i}" for i in range(1, 9)]
TARGETS += ["/health"] * 4


@contextlib.contextmanager
def three_apps() -> Iterator[tuple[int, int, int]]:
    with (
        shadow_app("production") as prod,
        shadow_app("baseline") as base,
        shadow_app("candidate") as cand,
    ):
        yield prod, base, cand


def traffic(production: int, targets: list[str]) -> list[bytes]:
    """Each request as a type 1 frame, then production's real answer as a type 2 frame."""
    frames = []
    for n, target in enumerate(targets):
        message_id = b"%024x" % n
        request = request_bytes("GET", target)
        frames.append(request_frame(message_id, request))
        frames.append(production_frame(message_id, exchange(production, closing(request)), 1.5))
    return frames


def rows_by(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(str(row["role"]), str(row["route"])): row for row in rows}


def test_each_destination_is_compared_with_production_per_route(tmp_path: Path) -> None:
    with three_apps() as (prod, base, cand):
        env = {**COMPARE_ENV, "TRAFFIC_DUPLICATOR_COMPARE_BASELINE": "1"}
        outputs = (
            "--output-http", f"http://127.0.0.1:{base}",
            "--output-http", f"http://deploy:{PASSWORD}@127.0.0.1:{cand}",
        )  # fmt: skip
        with replayer(tmp_path, *outputs, input_flag="--input-tcp", env=env) as rep:
            send_frames(rep.port, traffic(prod, TARGETS))
            wait_compared(rep.log_path, 2 * len(TARGETS))
            assert rep.stop() == 0

    log = rep.log()
    assert PASSWORD not in log
    rows = rows_by(report_rows(rep.log_path))
    assert set(rows) == {
        (role, route)
        for role in ("baseline", "candidate")
        for route in ("GET /users/:id", "GET /orders/:id", "GET /health")
    }
    assert all(f"source=web.7 destination=http://deploy:***@127.0.0.1:{cand} " in line
               for line in compare_lines(log) if "role=candidate" in line)  # fmt: skip
    users = rows[("candidate", "GET /users/:id")]
    assert (users["compared"], users["status_mismatch"], users["body_mismatch"]) == (8, 0, 8)
    assert users["flagged_fields"] == ["body:$.name"]
    orders = rows[("candidate", "GET /orders/:id")]
    assert (orders["compared"], orders["status_mismatch"]) == (8, 8)
    assert "status" in orders["flagged_fields"]
    baseline_users = rows[("baseline", "GET /users/:id")]
    assert baseline_users["body_mismatch"] == 8 and not baseline_users["flagged"]
    for role in ("baseline", "candidate"):
        health = rows[(role, "GET /health")]
        assert health["compared"] == 4
        assert health["status_mismatch"] == health["header_mismatch"] == 0
        assert health["body_mismatch"] == 0
    # Production's latency is the one the type 2 header carried (buckets: within 3.2 %).
    assert rows[("candidate", "GET /health")]["production_ms"]["p50"] == pytest.approx(1.5, 0.04)
    assert "at=difference source=web.7 " in log and "field=body:$.name" in log


def test_a_destination_that_refuses_counts_errors_per_route(tmp_path: Path) -> None:
    with shadow_app("production") as prod:
        closed = free_port()
        outputs = ("--output-http", f"http://127.0.0.1:{closed}", "--output-http-timeout", "1s")
        with replayer(tmp_path, *outputs, input_flag="--input-tcp", env=COMPARE_ENV) as rep:
            send_frames(rep.port, traffic(prod, TARGETS[:6]))
            assert rep.stop() == 0
    rows = rows_by(report_rows(rep.log_path))
    users = rows[("candidate", "GET /users/:id")]
    assert users["compared"] == 0
    assert users["errors"] + users["dropped"] == 6


def split_file(path: Path) -> list[gorproto.Message]:
    data = path.read_bytes()
    return [gorproto.decode(frame) for frame in data.split(gorproto.SEPARATOR) if frame]


def test_output_file_keeps_production_and_replayed_responses_and_input_file_compares_again(
    tmp_path: Path,
) -> None:
    capture = tmp_path / "capture.gor"
    with three_apps() as (prod, base, cand):
        outputs = ("--output-http", f"http://127.0.0.1:{base}", "--output-file", str(capture))
        with replayer(tmp_path, *outputs, input_flag="--input-tcp", env=COMPARE_ENV) as rep:
            send_frames(rep.port, traffic(prod, TARGETS[:4]))
            wait_compared(rep.log_path, 4)
            assert rep.stop() == 0

        messages = split_file(capture)
        by_id: dict[bytes, list[bytes]] = {}
        for message in messages:
            by_id.setdefault(message.message_id, []).append(message.kind)
        assert len(by_id) == 4
        assert all(sorted(kinds) == [b"1", b"2", b"3"] for kinds in by_id.values()), by_id
        replayed = [m for m in messages if m.kind == gorproto.REPLAYED_RESPONSE]
        assert all(m.payload.startswith(b"HTTP/1.") for m in replayed)
        assert all(m.latency and m.latency > 0 for m in replayed)
        assert b'"env": "baseline"' in replayed[0].payload

        # The capture replays: its type 2 are compared again, its type 3 skipped.
        log = tmp_path / "again.log"
        argv = engine_argv(
            "traffic_duplicator.replay", "--input-file", str(capture), "--input-file-max-wait",
            "10ms", "--output-http", f"http://127.0.0.1:{cand}",
        )  # fmt: skip
        with (
            log.open("wb") as handle,
            running(argv, env=python_env(**COMPARE_ENV), stderr=handle) as proc,
        ):
            assert proc.wait(30) == 0
    text = log.read_text()
    assert "at=stats final=true input=file accepted=4 malformed=0 " in text
    users = rows_by(report_rows(log))[("candidate", "GET /users/:id")]
    assert (users["compared"], users["body_mismatch"]) == (4, 4)
    assert "body:$.name" in users["flagged_fields"]


def test_with_comparison_off_type_2_messages_are_skipped_and_nothing_is_compared(
    tmp_path: Path,
) -> None:
    with (
        three_apps() as (prod, base, _),
        replayer(
            tmp_path, "--output-http", f"http://127.0.0.1:{base}", input_flag="--input-tcp"
        ) as rep,
    ):
        send_frames(rep.port, traffic(prod, TARGETS[:4]))
        assert rep.stop() == 0
    assert rep.stats()["accepted"] == "4"
    assert rep.stats()["malformed"] == "0"
    assert compare_lines(rep.log()) == []
