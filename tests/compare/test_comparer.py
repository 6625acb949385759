"""The Comparer as the replayer will drive it: transcripts with a fake clock."""

from __future__ import annotations

import json

from traffic_duplicator.compare import lines
from traffic_duplicator.compare.comparer import Comparer, Scope
from traffic_duplicator.compare.histogram import Histogram
from traffic_duplicator.compare.model import CapturedResponse
from traffic_duplicator.compare.settings import CompareSettings
from traffic_duplicator.report.logfmt import parse_logfmt

OUTPUTS = ["https://baseline.example.com", "https://bob:hunter2@candidate.example.com"]
SECRET = "s3cr3t-value"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(settings=None, outputs=OUTPUTS, **kwargs):
    clock = Clock()
    settings = settings or CompareSettings(enabled=True, baseline="1", interval=60)
    scope = Scope(tuple(outputs), source="web.1", **kwargs)
    return Comparer(settings, scope, clock=clock, wall=lambda: 1.7e9), clock


def js(document, status=200, latency=None, headers=()):
    body = json.dumps(document).encode()
    return CapturedResponse(
        status, (("Content-Type", "application/json"), *headers), body, len(body), latency=latency
    )


def records(output_lines, at="compare"):
    return [parse_logfmt(line) for line in output_lines if line.startswith(f"at={at} ")]


def test_one_line_per_output_and_route_per_interval():
    comparer, clock = make()
    for i in range(10):
        mid = str(i).encode()
        comparer.observe_production(mid, js({"id": i}, latency=0.020))
        comparer.observe_shadow(
            0, mid, js({"id": i}, latency=0.025), method=b"GET", target=f"/users/{i}".encode()
        )
        comparer.observe_shadow(
            1, mid, js({"id": -i}, latency=0.075), method=b"GET", target=f"/users/{i}".encode()
        )
    assert records(comparer.tick()) == []  # the interval is not over
    clock.now = 60
    out = comparer.tick()
    compare_lines = records(out)
    assert [(r["destination"], r["role"], r["route"]) for r in compare_lines] == [
        ("https://baseline.example.com", "baseline", "GET /users/:id"),
        ("https://bob:***@candidate.example.com", "candidate", "GET /users/:id"),
    ]
    baseline, candidate = compare_lines
    assert baseline["compared"] == "10" and baseline["body_mismatch"] == "0"
    assert candidate["body_mismatch"] == "9"  # id 0 is the same on both
    assert lines.decode_fields(candidate["fields"]) == {"body:$.id": 9}
    shadow = Histogram.decode(candidate["shadow_latency"])
    median = shadow.quantile(0.5)
    assert median is not None and abs(median - 0.075) < 0.075 * 0.04
    assert candidate["count#compare.compared"] == "10"
    assert all(len(line) < 10_000 for line in out)
    assert "hunter2" not in "\n".join(out)
    clock.now = 120
    assert records(comparer.tick()) == []  # nothing happened in this interval


def test_difference_samples_are_rate_limited_and_never_show_secrets():
    comparer, clock = make()
    for i in range(50):
        mid = str(i).encode()
        comparer.observe_production(
            mid, js({"token": SECRET, "n": 1}, headers=[("X-Api-Key", SECRET)])
        )
        comparer.observe_shadow(
            1,
            mid,
            js({"token": SECRET + "x", "n": 2}, headers=[("X-Api-Key", "other")]),
            method=b"GET",
            target=b"/a",
        )
    samples = records(comparer.tick(), at="difference")
    by_field: dict[str, int] = {}
    for sample in samples:
        by_field[sample["field"]] = by_field.get(sample["field"], 0) + 1
    assert by_field == {"header:x-api-key": 3, "body:$.token": 3, "body:$.n": 3}
    token = next(s for s in samples if s["field"] == "body:$.token")
    assert token["production"] == "[masked]" and token["shadow"] == "[masked]"
    number = next(s for s in samples if s["field"] == "body:$.n")
    assert (number["production"], number["shadow"], number["where"]) == ("1", "2", "$.n")
    clock.now = 60
    out = comparer.tick()
    assert SECRET not in "\n".join(out)
    [summary] = [r for r in records(out, at="difference") if "suppressed" in r]
    assert summary["suppressed"] == str(150 - 9)


def test_errors_and_dropped_answers_are_counted_per_route():
    comparer, clock = make(timeout=5)
    comparer.observe_error(1, b"1", method=b"GET", target=b"/down")
    comparer.observe_shadow(1, b"2", js({}, latency=0.01), method=b"POST", target=b"/orphan")
    clock.now = 6
    comparer.tick()
    out = comparer.close()
    got = {r["route"]: (r["errors"], r["dropped"], r["compared"]) for r in records(out)}
    assert got == {"GET /down": ("1", "0", "0"), "POST /orphan": ("0", "1", "0")}
    assert all(r["final"] == "true" for r in records(out))


def test_answers_still_waiting_at_close_are_dropped():
    comparer, _ = make()
    comparer.observe_shadow(0, b"1", js({}, latency=0.01), method=b"GET", target=b"/late")
    [record] = records(comparer.close())
    assert record["dropped"] == "1"
    assert comparer.pending == 0


def test_the_route_cap_keeps_memory_and_lines_bounded_on_100000_urls():
    comparer, clock = make(outputs=OUTPUTS[:1], settings=CompareSettings(enabled=True))
    for i in range(100_000):
        mid = i.to_bytes(4, "big")
        comparer.observe_production(mid, js({}))
        comparer.observe_shadow(
            0, mid, js({}, latency=0.01), method=b"GET", target=f"/p{i}/x".encode()
        )
    clock.now = 60
    out = records(comparer.tick())
    assert len(out) == 101
    assert any(r["route"] == "other" and r["compared"] == str(100_000 - 100) for r in out)
    assert comparer.pending == 0


def test_a_worst_case_line_stays_under_10000_bytes():
    comparer, clock = make(outputs=OUTPUTS[:1], settings=CompareSettings(enabled=True))
    for i in range(2000):
        mid = i.to_bytes(4, "big")
        latency = 1e-5 * (1.02**i)  # every bucket from 10 µs to the clamp
        production = js({f"field_{i % 64}_{'x' * 40}": 1}, latency=latency)
        comparer.observe_production(mid, production)
        comparer.observe_shadow(
            0,
            mid,
            js({f"other_{i % 64}_{'y' * 40}": 2}, latency=latency),
            method=b"GET",
            target=b"/a",
        )
    clock.now = 60
    [line] = [line for line in comparer.tick() if line.startswith("at=compare")]
    assert len(line) < 10_000


def test_split_output_releases_production_after_one_answer():
    comparer, _ = make(answers=1)
    comparer.observe_production(b"1", js({}))
    comparer.observe_shadow(1, b"1", js({}, latency=0.01), method=b"GET", target=b"/")
    assert comparer.pending == 0


def test_secret_named_headers_show_their_names_and_counts_never_their_values():
    comparer, clock = make()
    names = ("X-Csrf-Token", "X-Session-Id", "X-Auth-Token", "WWW-Authenticate")
    for i in range(4):
        mid = str(i).encode()
        prod = js({}, headers=[(name, f"{SECRET}-prod") for name in names])
        shadow = js({}, status=401, headers=[(name, f"{SECRET}-shadow") for name in names])
        comparer.observe_production(mid, prod)
        comparer.observe_shadow(1, mid, shadow, method=b"GET", target=b"/account")
    clock.now = 60
    out = comparer.tick()
    assert SECRET not in "\n".join(out)
    [line] = [r for r in records(out) if r["role"] == "candidate"]
    assert line["status_mismatch"] == "4"
    assert lines.decode_fields(line["fields"]) == {
        "status": 4,
        **{f"header:{name.lower()}": 4 for name in names},
    }
