"""Comparing two responses: status, headers with the ignore list, decoded bodies."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from traffic_duplicator.compare.capture import ResponseRecorder
from traffic_duplicator.compare.diff import compare, decode_body
from traffic_duplicator.compare.model import CapturedResponse
from traffic_duplicator.compare.rules import CompareRules, IgnoreError, parse_ignore

RULES = CompareRules()


def response(status=200, headers=(), body=b"", limit=64 * 1024) -> CapturedResponse:
    lines = [f"HTTP/1.1 {status} X".encode()]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    lines.append(b"Content-Length: %d" % len(body))
    [captured] = ResponseRecorder(limit).feed(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    return captured


def json_response(document, headers=(), encoding=None):
    body = json.dumps(document).encode()
    extra = [("Content-Type", "application/json"), *headers]
    if encoding == "gzip":
        body, extra = gzip.compress(body), [*extra, ("Content-Encoding", "gzip")]
    elif encoding == "deflate":
        body, extra = zlib.compress(body), [*extra, ("Content-Encoding", "deflate")]
    return response(headers=extra, body=body)


def fields(outcome):
    return [d.field for d in outcome.differences]


def test_identical_responses_have_no_differences():
    a = json_response({"a": 1})
    assert fields(compare(a, a, RULES)) == []


def test_a_different_status_is_one_difference():
    outcome = compare(response(200), response(500), RULES)
    assert outcome.status is not None and fields(outcome) == ["status"]
    assert (outcome.status.production, outcome.status.shadow) == (200, 500)


def test_per_request_headers_are_ignored_by_default_and_real_ones_compared():
    noisy = [
        ("Date", "Mon"),
        ("X-Request-Id", "1"),
        ("X-Runtime", "0.1"),
        ("ETag", '"a"'),
        ("Set-Cookie", "s=1"),
        ("Server", "a"),
        ("Via", "1.1 a"),
        ("X-RateLimit-Remaining", "9"),
        ("Report-To", "{}"),
        ("X-Heroku-Queue-Wait", "1"),
    ]
    other = [(name, value + "2") for name, value in noisy]
    assert fields(compare(response(headers=noisy), response(headers=other), RULES)) == []
    outcome = compare(response(headers=[("Cache-Control", "public")]), response(), RULES)
    assert fields(outcome) == ["header:cache-control"]
    assert outcome.headers[0].where == "header Cache-Control"


def test_framing_headers_never_differ_but_the_body_does():
    chunked = ResponseRecorder().feed(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    )[0]
    assert fields(compare(response(body=b"ok"), chunked, RULES)) == []
    assert fields(compare(response(body=b"ok"), response(body=b"no"), RULES)) == ["body"]


def test_location_is_compared_without_its_host_and_csp_without_its_nonce():
    a = response(
        headers=[
            ("Location", "https://prod.example.com/next?a=1"),
            ("Content-Security-Policy", "script-src 'nonce-abc'"),
        ]
    )
    b = response(
        headers=[
            ("Location", "https://staging.example.com/next?a=1"),
            ("Content-Security-Policy", "script-src 'nonce-xyz'"),
        ]
    )
    assert fields(compare(a, b, RULES)) == []


def test_json_bodies_are_compared_structurally_after_decoding():
    a = json_response({"user": {"name": "ann", "id": 1}}, encoding="gzip")
    b = json_response({"user": {"id": 1, "name": "bob"}}, encoding="deflate")
    outcome = compare(a, b, RULES)
    assert fields(outcome) == ["header:content-encoding", "body:$.user.name"]
    assert outcome.body[0].where == "$.user.name"


def test_secret_named_fields_are_marked():
    outcome = compare(json_response({"api_key": "a"}), json_response({"api_key": "b"}), RULES)
    assert outcome.body[0].secret
    headers = compare(
        response(headers=[("X-Auth-Token", "a")]), response(headers=[("X-Auth-Token", "b")]), RULES
    )
    assert headers.headers[0].secret


def test_non_json_bodies_compare_by_bytes_and_show_only_length_and_digest():
    outcome = compare(response(body=b"<p>hello</p>"), response(body=b"<p>hellO</p>"), RULES)
    [difference] = outcome.body
    assert difference.field == "body"
    assert "hello" not in str(difference.production) and "bytes, sha256" in str(
        difference.production
    )


def test_a_body_over_the_cap_compares_by_length_and_digest():
    same = b"y" * 1000
    assert (
        fields(compare(response(body=same, limit=10), response(body=same, limit=10), RULES)) == []
    )
    different = same[:-1] + b"z"
    assert fields(
        compare(response(body=same, limit=10), response(body=different, limit=10), RULES)
    ) == ["body"]


def test_json_on_one_side_only_is_a_body_difference():
    html = response(headers=[("Content-Type", "text/html")], body=b"<h1>Error</h1>")
    assert fields(compare(json_response({}), html, RULES)) == ["header:content-type", "body"]


def test_decompression_is_bounded():
    bomb = gzip.compress(b"\0" * (4 * 1024 * 1024))
    captured = response(headers=[("Content-Encoding", "gzip")], body=bomb)
    assert decode_body(captured, limit=1024 * 1024) is None
    assert decode_body(captured, limit=8 * 1024 * 1024) == b"\0" * (4 * 1024 * 1024)


def test_an_unknown_coding_compares_as_received():
    a = response(headers=[("Content-Encoding", "br")], body=b"\x1b\x00")
    assert decode_body(a, limit=100) is None
    assert fields(compare(a, a, RULES)) == []


def test_deeply_nested_json_falls_back_to_bytes():
    deep = b"[" * 100_000 + b"]" * 100_000
    a = response(headers=[("Content-Type", "application/json")], body=deep)
    assert fields(compare(a, a, RULES)) == []


def test_user_ignores_add_headers_prefixes_and_json_paths_and_can_restore_a_default():
    rules = parse_ignore("X-Build-Sha, X-Backend-*, !ETag, $.meta.generated_at")
    a = json_response(
        {"meta": {"generated_at": 1}, "v": 1},
        headers=[("X-Build-Sha", "a"), ("X-Backend-Host", "a"), ("ETag", '"1"')],
    )
    b = json_response(
        {"meta": {"generated_at": 2}, "v": 1},
        headers=[("X-Build-Sha", "b"), ("X-Backend-Host", "b"), ("ETag", '"2"')],
    )
    assert fields(compare(a, b, rules)) == ["header:etag"]


@pytest.mark.parametrize("bad", ["$.a[", "bad header", "X-Ok, $x"])
def test_bad_ignore_entries_name_the_variable(bad):
    with pytest.raises(IgnoreError, match="TRAFFIC_DUPLICATOR_COMPARE_IGNORE"):
        parse_ignore(bad)
