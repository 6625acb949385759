"""Requests whose framing a server could read another way are never framed (RFC 9112 6, 11.2).

Each case is a request whose end servers may place differently, followed by a second
request that a lenient server would read out of the first's body or after it: the
"smuggled" request. The framer must stop (OPAQUE, with the reason) before it, and
never frame a request differently from h11; where h11 is more lenient than we are,
the difference is pinned below.
"""

from __future__ import annotations

from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traffic_duplicator.http1 import BODY, END, HEAD, OPAQUE, REASONS, RequestFramer

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
BEFORE = b"GET /before HTTP/1.1\r\nHost: x\r\n\r\n"


def post(*fields: bytes, body: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return (
        b"POST /p "
        + version
        + b"\r\nHost: x\r\n"
        + b"".join(f + b"\r\n" for f in fields)
        + b"\r\n"
        + body
    )


CHUNKED = b"Transfer-Encoding: chunked"
LAST_CHUNK = b"0\r\n\r\n"


def chunked(first_line: bytes, data: bytes = b"abcde") -> bytes:
    return post(CHUNKED, body=first_line + b"\r\n" + data + b"\r\n" + LAST_CHUNK)


# (case id, the request, the reason). Each is followed by SMUGGLED in the tests.
CASES = [
    # Content-Length with Transfer-Encoding, in either order (RFC 9112 6.1)
    ("cl-then-te", post(b"Content-Length: 4", CHUNKED, body=LAST_CHUNK), "cl_and_te"),
    ("te-then-cl", post(CHUNKED, b"Content-Length: 40", body=LAST_CHUNK), "cl_and_te"),
    # Transfer-Encoding in HTTP/1.0 (6.1)
    ("te-http10", post(CHUNKED, body=LAST_CHUNK, version=b"HTTP/1.0"), "te_http10"),
    # a coding list whose final coding is not chunked, or with unknown codings (6.1)
    ("te-gzip", post(b"Transfer-Encoding: gzip", body=LAST_CHUNK), "te_not_chunked"),
    (
        "te-chunked-gzip",
        post(b"Transfer-Encoding: chunked, gzip", body=LAST_CHUNK),
        "te_not_chunked",
    ),
    (
        "te-gzip-chunked",
        post(b"Transfer-Encoding: gzip, chunked", body=LAST_CHUNK),
        "te_not_chunked",
    ),
    (
        "te-chunked-twice",
        post(b"Transfer-Encoding: chunked, chunked", body=LAST_CHUNK),
        "te_not_chunked",
    ),
    ("te-identity", post(b"Transfer-Encoding: identity", body=LAST_CHUNK), "te_not_chunked"),
    ("te-xchunked", post(b"Transfer-Encoding: xchunked", body=LAST_CHUNK), "te_not_chunked"),
    (
        "te-chunked-param",
        post(b"Transfer-Encoding: chunked;q=1", body=LAST_CHUNK),
        "te_not_chunked",
    ),
    ("te-empty", post(b"Transfer-Encoding:", body=LAST_CHUNK), "te_not_chunked"),
    # several Transfer-Encoding fields (6.1)
    ("te-twice", post(CHUNKED, CHUNKED, body=LAST_CHUNK), "te_repeated"),
    (
        "te-gzip-field-then-chunked",
        post(b"Transfer-Encoding: gzip", CHUNKED, body=LAST_CHUNK),
        "te_repeated",
    ),
    # Content-Length lists and duplicates (6.3 item 5; identical ones: see http1/head.py)
    ("cl-list-identical", post(b"Content-Length: 5, 5", body=b"hello"), "cl_invalid"),
    (
        "cl-twice-identical",
        post(b"Content-Length: 5", b"Content-Length: 5", body=b"hello"),
        "cl_invalid",
    ),
    (
        "cl-twice-differing",
        post(b"Content-Length: 5", b"Content-Length: 0", body=b"hello"),
        "cl_invalid",
    ),
    ("cl-list-differing", post(b"Content-Length: 5, 0", body=b"hello"), "cl_invalid"),
    ("cl-plus", post(b"Content-Length: +5", body=b"hello"), "cl_invalid"),
    ("cl-hex", post(b"Content-Length: 0x5", body=b"hello"), "cl_invalid"),
    ("cl-negative", post(b"Content-Length: -5", body=b"hello"), "cl_invalid"),
    ("cl-space-inside", post(b"Content-Length: 5 5", body=b"hello"), "cl_invalid"),
    ("cl-empty", post(b"Content-Length:", body=b"hello"), "cl_invalid"),
    ("cl-huge", post(b"Content-Length: 1" + b"0" * 19, body=b"hello"), "cl_invalid"),
    # whitespace between a field name and its colon (5.1)
    ("space-before-colon-cl", post(b"Content-Length : 5", body=b"hello"), "space_before_colon"),
    (
        "tab-before-colon-te",
        post(b"Transfer-Encoding\t: chunked", body=LAST_CHUNK),
        "space_before_colon",
    ),
    # obs-fold (5.2)
    ("obs-fold-te", post(b"Transfer-Encoding:\r\n chunked", body=LAST_CHUNK), "obs_fold"),
    ("obs-fold-other", post(b"X-A: a\r\n\tb", b"Content-Length: 5", body=b"hello"), "obs_fold"),
    ("obs-fold-into-host", post(b" X-A: a", b"Content-Length: 5", body=b"hello"), "obs_fold"),
    (
        "space-after-request-line",
        b"POST /p HTTP/1.1\r\n Host: x\r\nContent-Length: 5\r\n\r\nhello",
        "obs_fold",
    ),
    # bare CR and bare LF (2.2)
    ("bare-cr-value", post(b"X-A: a\rb", b"Content-Length: 5", body=b"hello"), "bare_cr"),
    ("bare-cr-after-te", post(CHUNKED + b"\r", body=LAST_CHUNK), "bare_cr"),
    ("bare-lf-field", post(b"X-A: a\nContent-Length: 5", body=b"hello"), "bare_lf"),
    (
        "bare-lf-request-line",
        b"POST /p HTTP/1.1\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "bare_lf",
    ),
    # other field syntax (5)
    ("nul-in-value", post(b"X-A: a\x00b", b"Content-Length: 5", body=b"hello"), "field_syntax"),
    ("bad-name", post(b"X(A): a", b"Content-Length: 5", body=b"hello"), "field_syntax"),
    ("no-colon", post(b"Content-Length 5", body=b"hello"), "field_syntax"),
    # invalid chunk sizes and extensions (7.1)
    ("chunk-size-hex-prefix", chunked(b"0x5"), "chunk_syntax"),
    ("chunk-size-space-before", chunked(b" 5"), "chunk_syntax"),
    ("chunk-size-space-after", chunked(b"5 "), "chunk_syntax"),
    ("chunk-size-negative", chunked(b"-5"), "chunk_syntax"),
    ("chunk-size-plus", chunked(b"+5"), "chunk_syntax"),
    ("chunk-size-empty", chunked(b";a=b"), "chunk_syntax"),
    ("chunk-size-overflow", chunked(b"1" + b"0" * 16), "chunk_syntax"),
    ("chunk-ext-space-in-name", chunked(b"5;a b"), "chunk_syntax"),
    ("chunk-ext-open-quote", chunked(b'5;a="b'), "chunk_syntax"),
    ("chunk-ext-bare-cr", chunked(b"5;a\rb"), "chunk_syntax"),
    ("chunk-ext-bare-lf", post(CHUNKED, body=b"5;a\nb\r\nabcde\r\n" + LAST_CHUNK), "chunk_syntax"),
    ("chunk-line-bare-lf", post(CHUNKED, body=b"5\nabcde\r\n" + LAST_CHUNK), "chunk_syntax"),
    ("chunk-data-too-long", chunked(b"3"), "chunk_syntax"),
    ("chunk-data-bare-lf", post(CHUNKED, body=b"5\r\nabcde\n" + LAST_CHUNK), "chunk_syntax"),
    ("trailer-obs-fold", post(CHUNKED, body=b"0\r\nX-T: a\r\n b\r\n\r\n"), "obs_fold"),
    (
        "trailer-space-before-colon",
        post(CHUNKED, body=b"0\r\nX-T : a\r\n\r\n"),
        "space_before_colon",
    ),
    ("trailer-bare-cr", post(CHUNKED, body=b"0\r\nX-T: a\rb\r\n\r\n"), "bare_cr"),
    # not a request line (3)
    ("request-line-two-spaces", b"POST  /p HTTP/1.1\r\nHost: x\r\n\r\n", "request_line"),
    ("request-line-http2", b"POST /p HTTP/2.0\r\nHost: x\r\n\r\n", "request_line"),
]

# Where h11 (a server) reads on and frames the smuggled request too, with its reasons.
# Everywhere else h11 refuses the request, as we do.
H11_READS_ON = {
    "cl-then-te",  # Transfer-Encoding wins (RFC 9112 6.3 item 3), then keeps the connection
    "te-then-cl",
    "te-http10",  # processes the chunked body, then must close: the smuggled one is not read
    "cl-list-identical",  # one value repeated: item 5's reading
    "cl-twice-identical",
    "obs-fold-te",  # unfolded into one value (RFC 9112 5.2 lets a server do that)
    "obs-fold-other",
    "obs-fold-into-host",
    "bare-lf-field",  # LF alone ends a line (RFC 9112 2.2 lets a recipient do that)
    "bare-lf-request-line",
    "chunk-size-space-after",  # "lenient with trailing whitespaces because some servers use it"
    "chunk-ext-space-in-name",  # extensions are not parsed at all (`;.*`)
    "chunk-ext-open-quote",
    "chunk-ext-bare-cr",
    "trailer-obs-fold",  # trailer fields are unfolded like header fields
    "request-line-http2",  # any HTTP/d.d version is read as HTTP/1.1
}


def our_requests(stream: bytes) -> tuple[list[bytes], list[Any]]:
    """The requests we frame from `stream`, as raw bytes, and the OPAQUE event if any."""
    framer = RequestFramer()
    requests: list[bytes] = []
    current = b""
    opaque: list[Any] = []
    for event in framer.feed(stream):
        if event[0] == HEAD:
            current = event[1]
        elif event[0] == BODY:
            current += event[1]
        elif event[0] == END:
            requests.append(current)
        elif event[0] == OPAQUE:
            opaque.append(event)
    return requests, opaque


def h11_requests(stream: bytes) -> tuple[list[bytes], bool]:
    """The requests h11 frames from `stream`, as raw bytes, and whether it refused some."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(stream)
    conn.receive_data(b"")
    requests: list[bytes] = []
    consumed = 0
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return requests, False
            if isinstance(event, h11.EndOfMessage):
                end = len(stream) - len(conn.trailing_data[0])
                requests.append(stream[consumed:end])
                consumed = end
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                conn.send(h11.EndOfMessage())
                if conn.our_state is h11.MUST_CLOSE:
                    return requests, False
                conn.start_next_cycle()
    except h11.RemoteProtocolError:
        return requests, True


@pytest.mark.parametrize(("request_", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_ambiguous_requests_stop_framing_before_the_smuggled_one(
    request_: bytes, reason: str
) -> None:
    assert reason in REASONS
    requests, opaque = our_requests(BEFORE + request_ + SMUGGLED)
    assert requests == [BEFORE]
    assert [event[1] for event in opaque] == [reason]


@pytest.mark.parametrize(("case", "request_"), [c[:2] for c in CASES], ids=[c[0] for c in CASES])
def test_h11_reads_on_only_where_pinned(case: str, request_: bytes) -> None:
    stream = BEFORE + request_ + SMUGGLED
    theirs, refused = h11_requests(stream)
    ours, _ = our_requests(stream)
    assert theirs[: len(ours)] == ours  # we never frame a request differently from h11
    read_on = not refused and len(theirs) > len(ours)
    assert read_on == (case in H11_READS_ON), (theirs, refused)


def test_the_same_request_split_at_every_byte_stops_the_same_way() -> None:
    for case, request_, reason in CASES:
        stream = BEFORE + request_ + SMUGGLED
        framer = RequestFramer()
        events: list[Any] = []
        for i in range(len(stream)):
            events += framer.feed(stream[i : i + 1])
        assert [e[1] for e in events if e[0] == OPAQUE] == [reason], case
        assert sum(1 for e in events if e[0] == END) == 1, case


# --- generated framing: we frame nothing h11 would read differently -----------------------

cl_values = st.sampled_from(["5", "05", " 5 ", "5, 5", "5,5", "+5", "5 5", "", "0x5", "4", "6"])
te_values = st.sampled_from(
    ["chunked", "Chunked", " chunked ", "gzip, chunked", "chunked, chunked", "identity", "gzip"]
)
cl_names = st.sampled_from(["Content-Length", "content-length", "Content-Length "])
te_names = st.sampled_from(["Transfer-Encoding", "TRANSFER-ENCODING", "Transfer-Encoding\t"])
bodies = st.sampled_from(
    [
        b"hello",
        b"5\r\nhello\r\n0\r\n\r\n",
        b"5;a=b\r\nhello\r\n0\r\nX: y\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\n\r\nhello",
        b"0\r\n\r\n",
        b"",
    ]
)


@st.composite
def framed_requests(draw: st.DrawFn) -> bytes:
    fields = [b"Host: x"]
    for _ in range(draw(st.integers(0, 2))):
        fields.append(f"{draw(cl_names)}:{draw(cl_values)}".encode())
    for _ in range(draw(st.integers(0, 2))):
        fields.append(f"{draw(te_names)}:{draw(te_values)}".encode())
    if draw(st.booleans()):
        fields.append(b"X-F: a" + draw(st.sampled_from([b"\r\n b", b"\rb", b"\nb", b""])))
    draw(st.randoms()).shuffle(fields)
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    head = b"POST /p " + version + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
    return head + draw(bodies)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(framed_requests())
def test_generated_framing_is_never_read_differently_from_h11(request_: bytes) -> None:
    stream = request_ + SMUGGLED
    ours, opaque = our_requests(stream)
    theirs, _ = h11_requests(stream)
    assert theirs[: len(ours)] == ours
    if opaque:
        assert len(ours) <= 1 and SMUGGLED not in ours
