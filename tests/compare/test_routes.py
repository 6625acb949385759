"""Route names: placeholders for ids, the query left out, user patterns, the cap."""

from __future__ import annotations

import pytest

from traffic_duplicator.compare.routes import (
    OTHER,
    RouteError,
    RouteLimit,
    Router,
    normalise,
    parse_patterns,
)


@pytest.mark.parametrize(
    ("method", "target", "route"),
    [
        ("GET", "/users/123", "GET /users/:id"),
        ("GET", "/users/456?page=2&token=abc", "GET /users/:id"),
        ("GET", "/", "GET /"),
        ("GET", "", "GET /"),
        ("DELETE", "/users/42/posts/7", "DELETE /users/:id/posts/:id"),
        ("GET", "/orders/3f2b8c1e-9a7d-4e6f-b0c2-1d2e3f4a5b6c", "GET /orders/:uuid"),
        ("GET", "/commits/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", "GET /commits/:hex"),
        ("GET", "/reset/dGhpc2lzYXRva2VuMTIzNDU2Nzg5", "GET /reset/:token"),
        ("GET", "/users/123.json", "GET /users/:id.json"),
        ("GET", "/about-us", "GET /about-us"),
        ("GET", "/deadbeefdeadbeef", "GET /deadbeefdeadbeef"),  # hex, but no digit: a word
        ("GET", "http://example.com/users/9?x=1", "GET /users/:id"),
        ("OPTIONS", "*", "OPTIONS *"),
        ("GET", "/a#frag", "GET /a"),
    ],
)
def test_normalise(method, target, route):
    assert normalise(method, target) == route


def test_a_very_long_path_is_bounded():
    route = normalise("GET", "/" + "/".join(f"seg{i}" for i in range(1000)))
    assert len(route) <= 200


def test_user_patterns_come_first_and_name_the_route():
    router = Router(parse_patterns("/users/:id/posts/:post_id, GET /blog/:slug, /assets/*path"))
    assert router.route("GET", "/users/7/posts/9?x=1") == "GET /users/:id/posts/:post_id"
    assert router.route("GET", "/blog/hello-world") == "GET /blog/:slug"
    assert router.route("POST", "/blog/hello-world") == "POST /blog/hello-world"  # method
    assert router.route("GET", "/assets/css/site.css") == "GET /assets/*path"
    assert router.route("GET", "/assets/") == "GET /assets/"  # `*` needs a segment
    assert router.route("GET", "/users/7") == "GET /users/:id"  # falls back


def test_empty_segments_do_not_match_a_named_segment():
    router = Router(parse_patterns("/users/:id"))
    assert router.route("GET", "/users/") == "GET /users/"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("users/:id", "is not a path pattern"),
        ("get /x", "does not start with a method"),
        ("/a/*rest/b", "not the last"),
        ("/a/:/b", "without a name"),
    ],
)
def test_bad_patterns_name_the_variable_and_the_pattern(text, message):
    with pytest.raises(RouteError, match=message) as info:
        parse_patterns(text)
    assert "TRAFFIC_DUPLICATOR_COMPARE_ROUTES" in str(info.value)


def test_the_cap_sends_new_routes_to_other_and_keeps_old_ones():
    limit = RouteLimit(2)
    assert limit.admit("GET /a") == "GET /a"
    assert limit.admit("GET /b") == "GET /b"
    assert limit.admit("GET /c") == OTHER
    assert limit.admit("GET /a") == "GET /a"
    assert limit.overflowed == 1


def test_one_hundred_thousand_distinct_urls_stay_within_the_cap():
    limit = RouteLimit(100)
    router = Router()
    routes = {limit.admit(router.route("GET", f"/p{i}/x")) for i in range(100_000)}
    assert len(routes) == 101 and OTHER in routes
