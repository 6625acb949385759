"""`python -m traffic_duplicator.report` as a user runs it, on generated log files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.report.logs import SECRET, generate, write_mixed_logs

TIMEOUT = 60


def report(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "traffic_duplicator.report", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.fixture
def logs(tmp_path):
    return [str(path) for path in write_mixed_logs(tmp_path)]


def rows_by_key(stdout: str) -> dict[tuple[str, str], Any]:
    rows = json.loads(stdout)["rows"]
    return {(row["role"], row["route"]): row for row in rows}


def test_json_report_flags_exactly_the_regressions(logs):
    result = report("--json", *logs)
    assert result.returncode == 0, result.stderr
    rows = rows_by_key(result.stdout)
    assert set(rows) == {
        (role, route)
        for role in ("baseline", "candidate")
        for route in ("GET /users/:id", "GET /orders/:id", "GET /slow", "GET /health")
    }
    flagged = {route for (role, route), row in rows.items() if row["flagged"]}
    assert flagged == {"GET /users/:id", "GET /orders/:id", "GET /slow"}
    assert not any(row["flagged"] for (role, _), row in rows.items() if role == "baseline")
    users = rows[("candidate", "GET /users/:id")]
    assert users["flagged_fields"] == ["body:$.name"]  # the env field is noise
    assert users["compared"] == 2 * 2 * 40  # two dynos, two intervals, duplicates once
    assert rows[("candidate", "GET /orders/:id")]["status_mismatch"] == 160
    assert "status" in rows[("candidate", "GET /orders/:id")]["flagged_fields"]
    assert rows[("candidate", "GET /slow")]["flagged_fields"] == ["latency"]
    health = rows[("candidate", "GET /health")]
    assert (health["status_mismatch"], health["header_mismatch"], health["body_mismatch"]) == (
        0,
        0,
        0,
    )
    slow = rows[("candidate", "GET /slow")]
    shift = slow["shadow_ms"]["p50"] - slow["production_ms"]["p50"]
    assert 35 <= shift <= 75  # 50 ms + the environment's 5 ms, within ±20 ms
    for row in rows.values():
        assert set(row["production_ms"]) == {"p50", "p95", "p99"}
    assert "t0psecret" not in result.stdout and SECRET not in result.stdout
    for path in logs:
        text = Path(path).read_text()
        assert "body:$.api_key" in text and "[masked]" in text
        assert SECRET not in text and "t0psecret" not in text and "Bearer" not in text
    assert (
        rows[("candidate", "GET /users/:id")]["destination"]
        == "https://deploy:***@candidate.example.com"
    )


def test_fail_on_flagged_exits_1(logs):
    assert report("--fail-on-flagged", *logs).returncode == 1


def test_plain_table_lists_each_destination_and_route(logs):
    result = report(*logs)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "https://staging.example.com (baseline)" in out
    assert "https://deploy:***@candidate.example.com (candidate)" in out
    assert "top differing fields" in out and "body:$.name (160)" in out
    assert out.count("GET /users/:id") == 2
    assert "t0psecret" not in out


def test_stdin_is_read_by_default_and_without_a_baseline_everything_differing_is_flagged():
    lines = generate("web.1", requests=10, intervals=1, baseline=None)
    result = report("--json", "--fail-on-flagged", stdin="\n".join(lines) + "\n")
    assert result.returncode == 1
    rows = json.loads(result.stdout)["rows"]
    assert {row["role"] for row in rows} == {"candidate"}
    staging_users = next(
        row
        for row in rows
        if row["destination"] == "https://staging.example.com" and row["route"] == "GET /users/:id"
    )
    assert staging_users["flagged_fields"] == ["body:$.api_key", "body:$.env", "body:$.note"]


def test_a_missing_file_is_one_line_naming_it(tmp_path):
    result = report(str(tmp_path / "nope.log"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "nope.log" in result.stderr and "No such file" in result.stderr


def test_input_without_comparison_lines_is_an_error(tmp_path):
    path = tmp_path / "app.log"
    path.write_text("at=info method=GET\nhello\n")
    result = report(str(path))
    assert result.returncode == 2
    assert "no at=compare lines" in result.stderr and result.stderr.count("\n") == 1


def test_malformed_lines_are_skipped_with_one_warning(tmp_path):
    good = generate("web.1", requests=5, intervals=1)
    path = tmp_path / "mixed.log"
    path.write_text("at=compare destination=x route=y compared=NaN\n" + "\n".join(good) + "\n")
    result = report("--json", str(path))
    assert result.returncode == 0
    assert "skipped 1 malformed" in result.stderr and "mixed.log line 1" in result.stderr


def test_a_bad_flag_is_one_line():
    result = report("--relative-threshold", "lots")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--relative-threshold" in result.stderr


def test_a_masked_field_count_is_named_in_a_warning_and_its_line_kept(tmp_path):
    good = generate("web.1", requests=5, intervals=1)
    # As an older version logged a secret-named header's count: masked by the log writer.
    old = [re.sub(r'fields="(?=[^"])', 'fields="header:x-auth-token=***,', text) for text in good]
    path = tmp_path / "old.log"
    path.write_text("\n".join(old) + "\n")
    result = report("--json", str(path))
    assert result.returncode == 0, result.stderr
    assert "malformed" not in result.stderr
    assert "masked the counts of header:x-auth-token" in result.stderr
    assert result.stderr.count("\n") == 1
    same = tmp_path / "new.log"
    same.write_text("\n".join(good) + "\n")
    assert json.loads(result.stdout) == json.loads(report("--json", str(same)).stdout)
