"""Log files for the report's tests, written by the real Comparer on a fake clock.

Production answers every route; the baseline differs only by environment noise (a field
naming the environment, Date); the candidate has a changed JSON field on /users/:id, a
500 on /orders/:id and +50 ms on /slow. /health answers the same everywhere.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from traffic_duplicator.compare.comparer import Comparer, Scope
from traffic_duplicator.compare.model import CapturedResponse
from traffic_duplicator.compare.settings import CompareSettings

BASELINE_URL = "https://staging.example.com"
CANDIDATE_URL = "https://deploy:t0psecret@candidate.example.com"
SECRET = "sk_live_a1b2c3d4e5f6g7h8i9j0"  # each environment has its own, all secret


def response(status, document, latency=None, env=None, date="Mon"):
    if isinstance(document, dict) and env is not None:
        document = {**document, "env": env, "api_key": f"{SECRET}-{env}", "note": f"Bearer {env}"}
    body = json.dumps(document).encode() if isinstance(document, dict) else document
    headers = (("Content-Type", "application/json"), ("Date", date), ("X-Request-Id", date))
    return CapturedResponse(status, headers, body, len(body), latency=latency)


def production(route: str, i: int):
    latency = 0.020 + (i % 5) / 1000
    if route == "/health":
        return response(200, b"ok", latency)
    return response(200, {"id": i, "name": f"user{i}"}, latency, env="production")


def shadow(route: str, i: int, candidate: bool):
    env = "candidate" if candidate else "staging"
    latency = 0.025 + (i % 5) / 1000
    if route == "/health":
        return response(200, b"ok", date="Tue"), latency
    if candidate and route == "/orders/{i}":
        return response(500, b"<h1>Internal Server Error</h1>", date="Tue"), latency
    if candidate and route == "/slow":
        latency += 0.050
    name = f"User {i}" if candidate and route == "/users/{i}" else f"user{i}"
    return response(200, {"id": i, "name": name}, env=env, date="Tue"), latency


ROUTES = ("/users/{i}", "/orders/{i}", "/slow", "/health")


def generate(
    dyno: str, requests: int = 40, intervals: int = 2, baseline: str | None = "1"
) -> list[str]:
    clock = [0.0]
    settings = CompareSettings(enabled=True, baseline=baseline, interval=60)
    scope = Scope((BASELINE_URL, CANDIDATE_URL), source=dyno)
    comparer = Comparer(settings, scope, clock=lambda: clock[0], wall=lambda: 1.7e9 + clock[0])
    out: list[str] = []
    for interval in range(intervals):
        for i in range(requests):
            for route in ROUTES:
                mid = f"{dyno}-{interval}-{i}-{route}".encode()
                target = route.format(i=i + 1000 * interval).encode()
                comparer.observe_production(mid, production(route, i))
                for output in (0, 1):
                    answer, latency = shadow(route, i, candidate=output == 1)
                    answer = dataclasses.replace(answer, latency=latency)
                    comparer.observe_shadow(output, mid, answer, method=b"GET", target=target)
        clock[0] += 60
        out += comparer.tick()
    out += comparer.close()
    return out


def write_mixed_logs(directory: Path) -> list[Path]:
    """Three files in the three shapes users have: heroku logs, the wrapper, a drain."""
    web1 = generate("web.1")
    web2 = generate("web.2")
    heroku = directory / "heroku.log"
    heroku.write_text(
        "2026-05-01T10:00:00.000000+00:00 heroku[router]: at=info method=GET path=/\n"
        + "".join(f"2026-05-01T10:01:00.000000+00:00 app[web.1]: {line}\n" for line in web1)
        + "2026-05-01T10:01:00.000000+00:00 app[web.1]: Started GET /users/1\n"
    )
    wrapper = directory / "wrapper.log"
    wrapper.write_text("".join(f"replayer | {line}\n" for line in web2[: len(web2) // 2]))
    drain = directory / "drain.log"
    drain.write_text(
        "".join(
            f"250 <190>1 2026-05-01T10:02:00+00:00 host app web.2 - {line}\n"
            for line in web2[len(web2) // 2 - 1 :]  # one line overlaps the wrapper's file
        )
    )
    return [heroku, wrapper, drain]
