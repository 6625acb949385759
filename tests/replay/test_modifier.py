"""GoReplay's filters and rewrites, request editing and limits, as pure functions."""

from __future__ import annotations

import base64

import pytest

from traffic_duplicator.options import Limit, LimitKind, parse_argv
from traffic_duplicator.replay.config import build_modifier_config
from traffic_duplicator.replay.limits import Limiter, fnv1a_32, hash_sampled
from traffic_duplicator.replay.modifier import Modifier, Verdict
from traffic_duplicator.replay.request import (
    HeadEditor,
    Request,
    set_query_param,
    to_origin_form,
    with_header,
    with_host,
    with_target_prefix,
)


def modifier(*argv: str) -> Modifier:
    return Modifier(build_modifier_config(parse_argv(list(argv))))


def request(head: bytes, body: bytes = b"") -> Request:
    return Request(head, body, head.split(b" ", 1)[0], 0)


HEAD = b"GET /v1/user/42/ping?x=1 HTTP/1.1\r\nHost: a.example.com\r\nuser-agent: curl\r\n\r\n"


def apply(mod: Modifier, head: bytes = HEAD) -> bytes | Verdict:
    result = mod.apply(request(head, b"body"))
    return result if isinstance(result, Verdict) else result.head


def rewritten(mod: Modifier, head: bytes = HEAD) -> bytes:
    result = apply(mod, head)
    assert isinstance(result, bytes), result
    return result


def test_no_flags_returns_the_same_object() -> None:
    original = request(HEAD)
    assert modifier().apply(original) is original


def test_set_header_replaces_keeping_the_name_as_sent_or_adds_it_first() -> None:
    # gor's proto.SetHeader replaces in place; AddHeader puts a new header first, so the
    # second new header lands before the first (as GoReplay 1.2.0 sends them).
    head = apply(
        modifier(
            "--http-set-header", "User-Agent: Gor", "--http-set-header", "X-New: 1",
            "--http-set-header", "X-Newer: 2",
        )
    )  # fmt: skip
    assert head == (
        b"GET /v1/user/42/ping?x=1 HTTP/1.1\r\nX-Newer: 2\r\nX-New: 1\r\n"
        b"Host: a.example.com\r\nuser-agent: Gor\r\n\r\n"
    )


def test_set_param_replaces_or_appends() -> None:
    assert rewritten(modifier("--http-set-param", "x=2")).startswith(b"GET /v1/user/42/ping?x=2 ")
    assert rewritten(modifier("--http-set-param", "k=v")).startswith(
        b"GET /v1/user/42/ping?x=1&k=v "
    )
    assert set_query_param(b"/a", b"k", b"v") == b"/a?k=v"


def test_url_rewrite_uses_go_templates_and_only_the_first_match() -> None:
    mod = modifier(
        "--http-rewrite-url",
        "/v1/user/([^\\/]+)/ping:/v2/user/$1/ping",
        "--http-rewrite-url",
        "/v2:/v3",
    )
    assert rewritten(mod).startswith(b"GET /v2/user/42/ping?x=1 HTTP/1.1\r\n")


def test_header_rewrite() -> None:
    mod = modifier("--http-rewrite-header", "Host: (.*).example.com,$1.beta.example.com")
    assert b"\r\nHost: a.beta.example.com\r\n" in rewritten(mod)


@pytest.mark.parametrize(
    ("argv", "verdict"),
    [
        (["--http-allow-method", "POST"], Verdict.METHOD),
        (["--http-allow-url", "^/admin"], Verdict.URL),
        (["--http-disallow-url", "ping"], Verdict.URL),
        (["--http-allow-header", "X-Api: ^v1"], Verdict.HEADER),  # header missing
        (["--http-allow-header", "user-agent: ^wget"], Verdict.HEADER),
        (["--http-disallow-header", "User-Agent:curl"], Verdict.HEADER),
    ],
)
def test_filters_drop(argv: list[str], verdict: Verdict) -> None:
    assert apply(modifier(*argv)) is verdict


@pytest.mark.parametrize(
    "argv",
    [
        ["--http-allow-method", "GET", "--http-allow-method", "POST"],
        ["--http-allow-url", "ping", "--http-allow-url", "^/nomatch"],
        ["--http-allow-header", "User-Agent: ^cu"],
        ["--http-disallow-header", "X-Missing: .*"],
    ],
)
def test_filters_pass(argv: list[str]) -> None:
    assert isinstance(apply(modifier(*argv)), bytes)


def test_allow_url_sees_the_target_after_set_param() -> None:
    # gor sets params before filtering on the URL.
    mod = modifier("--http-set-param", "k=v", "--http-allow-url", "k=v")
    assert isinstance(apply(mod), bytes)


def test_basic_auth_filter() -> None:
    mod = modifier("--http-basic-auth-filter", "^customer[0-9]")

    def with_auth(user: str) -> bytes:
        token = base64.b64encode(user.encode()).decode()
        return get_head(f"Authorization: Basic {token}\r\n")

    assert isinstance(apply(mod, with_auth("customer1:pw")), bytes)
    assert apply(mod, with_auth("admin:pw")) is Verdict.BASIC_AUTH
    assert isinstance(apply(mod, get_head("")), bytes)  # no credentials: not filtered


def get_head(extra: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


def test_fnv1a_known_values() -> None:
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968


def test_header_limiter_is_consistent_per_value() -> None:
    mod = modifier("--http-header-limiter", "User-Id: 50%")
    for user in range(40):
        head = get_head(f"User-Id: {user}\r\n")
        expected = hash_sampled(str(user).encode(), 50)
        results = {isinstance(apply(mod, head), bytes) for _ in range(3)}
        assert results == {expected}
    assert isinstance(apply(mod, get_head("")), bytes)  # without the header: kept


def test_param_limiter() -> None:
    mod = modifier("--http-param-limiter", "user_id: 0%")
    assert apply(mod, b"GET /?user_id=7 HTTP/1.1\r\n\r\n") is Verdict.SAMPLE
    assert isinstance(apply(mod, b"GET /?other=7 HTTP/1.1\r\n\r\n"), bytes)


def test_rate_limiter_window() -> None:
    now = [100.0]
    limiter = Limiter(Limit(LimitKind.RATE, 3), clock=lambda: now[0])
    assert [limiter.allow() for _ in range(5)] == [True, True, True, False, False]
    now[0] = 101.2
    assert [limiter.allow() for _ in range(4)] == [True, True, True, False]


def test_percent_limiter_uses_its_random_source() -> None:
    values = iter([0.10, 0.30, 0.24, 0.99])
    limiter = Limiter(Limit(LimitKind.PERCENT, 25), rand=lambda: next(values))
    assert [limiter.allow() for _ in range(4)] == [True, False, True, False]


def test_with_host_replaces_the_value_only() -> None:
    head = b"GET / HTTP/1.1\r\nhost:  old\r\nX: 1\r\n\r\n"
    assert with_host(head, b"new:8080") == b"GET / HTTP/1.1\r\nhost: new:8080\r\nX: 1\r\n\r\n"
    assert with_host(b"GET / HTTP/1.0\r\n\r\n", b"h") == b"GET / HTTP/1.0\r\nHost: h\r\n\r\n"


def test_target_prefix() -> None:
    assert (
        with_target_prefix(b"GET /a HTTP/1.1\r\n\r\n", b"/base") == b"GET /base/a HTTP/1.1\r\n\r\n"
    )
    absolute = b"GET http://x/a HTTP/1.1\r\n\r\n"
    assert with_target_prefix(absolute, b"/base") == absolute


def test_head_editor_round_trip_is_exact() -> None:
    head = b"PUT /x HTTP/1.1\r\nA:1\r\nb :  2\r\n\r\n"
    editor = HeadEditor(head)
    assert editor.get(b"B") == b"2"
    assert editor.render() == head


# The option lines of goreplay issues #934 and #965: gor answers with Go's ReplaceAll, which
# ignores the empty match that `(.*)` finds right after the whole value.
@pytest.mark.parametrize(
    ("option", "header", "sent"),
    [
        ("X-A: (.*),x1$1", b"X-A: val", b"X-A: x1val"),  # gor #934
        ("X-B:(.*),BBB", b"X-B: anything", b"X-B: BBB"),  # gor #965
        ("X-C: ^(\\w+)-(?P<env>\\w+)$,${env}_$1", b"X-C: web-prod", b"X-C: prod_web"),
        ("X-D: (?i)TOKEN,$9[$0]", b"X-D: token", b"X-D: [token]"),
    ],
)
def test_header_rewrites_give_what_gor_gives(option: str, header: bytes, sent: bytes) -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n"
    assert rewritten(modifier("--http-rewrite-header", option), head) == (
        b"GET / HTTP/1.1\r\nHost: x\r\n" + sent + b"\r\n\r\n"
    )


def test_url_rewrite_with_an_empty_match_writes_the_prefix_once() -> None:
    mod = modifier("--http-rewrite-url", "(.*):/shadow$1")
    assert rewritten(mod, b"GET /users?id=7 HTTP/1.1\r\n\r\n") == (
        b"GET /shadow/users?id=7 HTTP/1.1\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("head", "origin"),
    [
        (b"GET http://www.example.com/users?id=7 HTTP/1.1\r\n", b"GET /users?id=7 HTTP/1.1\r\n"),
        (b"GET HTTPS://www.example.com?x=1 HTTP/1.1\r\n", b"GET /?x=1 HTTP/1.1\r\n"),
        (b"POST http://h:8080 HTTP/1.0\r\n", b"POST / HTTP/1.0\r\n"),
        (b"GET /already HTTP/1.1\r\n", b"GET /already HTTP/1.1\r\n"),
        (b"CONNECT h:443 HTTP/1.1\r\n", b"CONNECT h:443 HTTP/1.1\r\n"),
        (b"OPTIONS * HTTP/1.1\r\n", b"OPTIONS * HTTP/1.1\r\n"),
    ],
)
def test_absolute_form_targets_become_origin_form(head: bytes, origin: bytes) -> None:
    # RFC 9112 §3.2.2: the authority of an absolute-form target wins over Host.
    rest = b"Host: www.example.com\r\n\r\n"
    assert to_origin_form(head + rest) == origin + rest


def test_with_header_replaces_the_first_or_appends() -> None:
    head = b"GET / HTTP/1.1\r\nauthorization:  Basic old\r\nAuthorization: x\r\n\r\n"
    assert with_header(head, b"Authorization", b"Basic new") == (
        b"GET / HTTP/1.1\r\nauthorization: Basic new\r\nAuthorization: x\r\n\r\n"
    )
    assert with_header(b"GET / HTTP/1.1\r\n\r\n", b"Authorization", b"Basic a") == (
        b"GET / HTTP/1.1\r\nAuthorization: Basic a\r\n\r\n"
    )
