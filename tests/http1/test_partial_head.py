"""A request head arriving in many reads: the same verdicts, at the same reads, in linear work.

The framer checks a head still arriving for bare CR and bare LF (RFC 9112 section 2.2)
and for its size limit, so that it stops mirroring before the blank line ever comes.
These transcripts feed heads byte by byte and in random splits and compare with feeding
each head whole, and with the rule the checks follow: at every read, the whole buffered
head (but a trailing CR) is scanned. The work test counts the bytes the check reads.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traffic_duplicator.http1 import DEFAULT_MAX_HEAD, HEAD, OPAQUE, RequestFramer
from traffic_duplicator.http1 import framer as framer_module
from traffic_duplicator.http1.framer import bare_line_end

HEADS = [
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
    b"POST /form HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\nX-B: two words\r\n\r\n",
]
BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def summary(events: list[Any]) -> list[tuple[object, ...]]:
    """Events without the parsed head (RequestHead compares by identity)."""
    return [event[:2] if event[0] == HEAD else tuple(event) for event in events]


def feed(pieces: list[bytes], max_head: int = DEFAULT_MAX_HEAD) -> list[list[tuple[object, ...]]]:
    """The events of each read, in order."""
    framer = RequestFramer(max_head)
    return [summary(framer.feed(piece)) for piece in pieces]


def flat(per_read: list[list[tuple[object, ...]]]) -> list[tuple[object, ...]]:
    return [event for events in per_read for event in events]


def opaque_at(per_read: list[list[tuple[object, ...]]]) -> int | None:
    """The read whose events stop framing, if any."""
    for index, events in enumerate(per_read):
        if any(event[0] == OPAQUE for event in events):
            return index
    return None


def rescan_point(pieces: list[bytes], max_head: int = DEFAULT_MAX_HEAD) -> int | None:
    """Where the rule says framing stops, re-scanning the whole buffered head at every read.

    For streams of heads without bodies, whose blank lines between requests are CRLFs.
    """
    buffered = b""
    for index, piece in enumerate(pieces):
        buffered += piece
        while True:
            while buffered.startswith(b"\r\n"):  # blank lines before a request (2.2)
                buffered = buffered[2:]
            end = buffered.find(b"\r\n\r\n")
            if end < 0:
                break
            if flat(feed([buffered[: end + 4]], max_head))[0][0] == OPAQUE:
                return index
            buffered = buffered[end + 4 :]
        if len(buffered) > max_head:
            return index
        if BARE.search(buffered, 0, len(buffered) - buffered.endswith(b"\r")):
            return index
    return None


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in pairwise(bounds) if b > a]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


BLANK_LINES = [b"", b"\r\n", b"\r\n\r\n"]  # before a request (RFC 9112 section 2.2)
# One defect, or none, anywhere in a head: a CR or LF standing alone, or doubled.
DEFECTS = [b"", b"\r", b"\n", b"\r\r", b"\n\n", b"\n\r"]


@st.composite
def defective_heads(draw: st.DrawFn) -> bytes:
    head = draw(st.sampled_from(BLANK_LINES)) + draw(st.sampled_from(HEADS))
    at = draw(st.integers(0, len(head) - 1))
    return head[:at] + draw(st.sampled_from(DEFECTS)) + head[at:]


@pytest.mark.parametrize("head", [*HEADS, b"\r\n\r\n" + HEADS[1]])
@pytest.mark.parametrize("defect", DEFECTS)
def test_byte_by_byte_gives_the_verdict_of_the_whole_head(head: bytes, defect: bytes) -> None:
    for at in range(len(head)):
        stream = head[:at] + defect + head[at:]
        pieces = bytewise(stream)
        per_read = feed(pieces)
        assert flat(per_read) == flat(feed([stream])), stream
        assert opaque_at(per_read) == rescan_point(pieces), stream


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(defective_heads(), st.data())
def test_random_splits_give_the_verdict_of_the_whole_head(stream: bytes, data: Any) -> None:
    cuts = data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=8))
    pieces = split(stream, cuts)
    per_read = feed(pieces)
    assert flat(per_read) == flat(feed([stream]))
    assert opaque_at(per_read) == rescan_point(pieces)


@pytest.mark.parametrize(
    ("pieces", "read", "reason"),
    [
        # A CR ending one read, its LF starting the next: a line end, not a bare CR.
        ([b"GET / HTTP/1.1\r", b"\nHost: x\r", b"\n\r", b"\n"], None, None),
        # A CR ending one read, something else starting the next: bare, found at that read.
        ([b"GET / HTTP/1.1\r\nHost: x\r", b"Y: z\r\n\r\n"], 1, "bare_cr"),
        ([b"GET / HTTP/1.1\r", b"\r", b"\n\r\n"], 1, "bare_cr"),
        # An LF starting a read after anything but a CR: bare, found at that read.
        ([b"GET / HTTP/1.1\r\nHost: x", b"\nY: z\r\n\r\n"], 1, "bare_lf"),
        ([b"GET / HTTP/1.1\r\n", b"\n"], 1, "bare_lf"),
        ([b"GET / HTTP/1.1\r\nA: b\r\n", b"", b"\nC: d"], 2, "bare_lf"),
        # Bare at the very end of a read: an LF is judged at once, a CR waits a read.
        ([b"GET / HTTP/1.1\r\nHost: x\n", b"Y: z"], 0, "bare_lf"),
        ([b"GET / HTTP/1.1\r\nHost: x\r\r", b"\n"], 0, "bare_cr"),
        # A lone CR before the request may be half a blank line (section 2.2).
        ([b"\r", b"\nGET / HTTP/1.1\r", b"\n\r\n"], None, None),
        ([b"\r", b"\n", b"\n"], 2, "bare_lf"),
        # ... and what follows it in the same read as the head's end is refused as a whole
        # head would be: a CR or LF alone is no blank line.
        ([b"\r", b"GET / HTTP/1.1\r\n\r\n"], 1, "bare_cr"),
        ([b"\r", b"\n\nGET / HTTP/1.1\r\n\r\n"], 1, "bare_lf"),
        ([b"\r", b"\r\n\r\n"], 1, "bare_cr"),
        ([b"\r", b"\n\r\n\r\n"], None, None),
    ],
)
def test_a_bare_cr_or_lf_at_a_read_boundary_stops_framing_at_that_read(
    pieces: list[bytes], read: int | None, reason: str | None
) -> None:
    per_read = feed(pieces)
    assert opaque_at(per_read) == read == rescan_point(pieces)
    if read is not None:
        assert per_read[read][-1][:2] == (OPAQUE, reason)
    assert flat(per_read) == flat(feed([b"".join(pieces)]))


def test_the_size_limit_stops_framing_at_the_read_that_crosses_it() -> None:
    head = b"GET / HTTP/1.1\r\nX-Big: " + b"h" * 200
    pieces = split(head, list(range(10, len(head), 7)))
    per_read = feed(pieces, max_head=100)
    crossing = next(i for i in range(len(pieces)) if len(b"".join(pieces[: i + 1])) > 100)
    assert opaque_at(per_read) == crossing == rescan_point(pieces, max_head=100)
    assert per_read[crossing] == [(OPAQUE, "head_too_large", "a message head over the size limit")]


def test_a_head_in_many_reads_is_checked_once_per_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    # The work of the partial-head check, counted as the bytes it is asked to read:
    # each byte of a head once, however many reads bring it (not once per read).
    ranges: list[tuple[int, int]] = []

    def counting(data: bytes | bytearray, start: int, stop: int) -> str | None:
        ranges.append((start, stop))
        return bare_line_end(data, start, stop)

    monkeypatch.setattr(framer_module, "bare_line_end", counting)
    head = b"GET /x HTTP/1.1\r\nHost: x\r\n" + b"X-Some-Header: some value here\r\n" * 1900
    assert 60_000 < len(head) < DEFAULT_MAX_HEAD
    for step in (1024, 1000, 61, 1):
        ranges.clear()
        framer = RequestFramer()
        buffer = None
        for piece in split(head, list(range(step, len(head), step))):
            assert framer.feed(piece) == []
            # The buffered head grows in place rather than being copied at every read.
            buffer = buffer or framer._buffer
            assert framer._buffer is buffer
            assert framer._checked == len(buffer) - buffer.endswith(b"\r")
        assert bytes(buffer or b"") == head
        # Contiguous ranges: each starts where the last one stopped.
        assert [start for start, _ in ranges] == [0] + [stop for _, stop in ranges[:-1]]
        assert sum(stop - start for start, stop in ranges) == len(head) - head.endswith(b"\r")


def test_the_checked_offset_restarts_with_each_head() -> None:
    framer = RequestFramer()
    first = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
    assert [e[0] for e in framer.feed(first[:20])] == []
    assert framer._checked == 20
    assert summary(framer.feed(first[20:] + b"GET /2 HTTP/1.1\r\nA: b\r"))[0] == (HEAD, first)
    assert (bytes(framer._buffer), framer._checked) == (b"GET /2 HTTP/1.1\r\nA: b\r", 21)
    assert summary(framer.feed(b"\n\r\n"))[0] == (HEAD, b"GET /2 HTTP/1.1\r\nA: b\r\n\r\n")
    assert (framer._buffer, framer._checked) == (bytearray(), 0)


@pytest.mark.parametrize(
    ("data", "start", "stop", "reason"),
    [
        (b"", 0, 0, None),
        (b"abc", 0, 3, None),
        (b"a\r\nb\r\n", 0, 6, None),
        (b"a\rb", 0, 3, "bare_cr"),
        (b"a\nb", 0, 3, "bare_lf"),
        (b"\n", 0, 1, "bare_lf"),
        (b"a\r", 0, 2, "bare_cr"),  # nothing after stop is read: the caller keeps such a CR out
        (b"a\r\n", 0, 2, "bare_cr"),
        (b"a\r\nb", 2, 4, None),  # the byte before start pairs with an LF at start
        (b"a\n\nb", 2, 4, "bare_lf"),
        (b"a\rb\nc", 0, 5, "bare_cr"),  # the first one names the reason
        (b"a\nb\rc", 0, 5, "bare_lf"),
        (b"\r\r\n", 0, 3, "bare_cr"),
        (b"\r\n\n", 0, 3, "bare_lf"),
        (b"x" * 1000 + b"\r\n" + b"y" * 1000, 0, 2002, None),
        (b"x" * 1000 + b"\r\n" + b"y\n" * 10, 500, 2022, "bare_lf"),
    ],
)
def test_bare_line_end_names_the_first_cr_or_lf_outside_a_crlf(
    data: bytes, start: int, stop: int, reason: str | None
) -> None:
    assert bare_line_end(data, start, stop) == reason
    assert bare_line_end(bytearray(data), start, stop) == reason
