"""GoReplay framing: the exact bytes of a message and splitting a stream back into them."""

from __future__ import annotations

import re

from traffic_duplicator import gorproto


def test_encoded_message_matches_goreplays_layout_byte_for_byte() -> None:
    frame = gorproto.encode(
        b"GET / HTTP/1.1\r\n\r\n", message_id=b"a" * 24, timestamp_ns=1700000000000000000
    )
    expected = (
        b"1 aaaaaaaaaaaaaaaaaaaaaaaa 1700000000000000000 0\n"
        b"GET / HTTP/1.1\r\n\r\n"
        b"\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n"
    )
    assert frame == expected


def test_default_ids_are_24_hex_digits_and_fresh() -> None:
    first, second = gorproto.new_id(), gorproto.new_id()
    assert re.fullmatch(rb"[0-9a-f]{24}", first)
    assert first != second


def test_decode_reads_back_what_encode_wrote() -> None:
    frame = gorproto.encode(b"payload\nwith newline", message_id=b"0" * 24, timestamp_ns=5)
    message = gorproto.decode(frame[: -len(gorproto.SEPARATOR)])
    assert (message.kind, message.message_id, message.timestamp_ns, message.latency) == (
        b"1",
        b"0" * 24,
        5,
        0,
    )
    assert message.payload == b"payload\nwith newline"


def test_decode_accepts_a_header_without_latency() -> None:
    assert gorproto.decode(b"2 abc 7\nbody").latency is None


def test_decode_rejects_a_bad_header() -> None:
    for bad in (b"no newline", b"9 abc 1 0\nx", b"1 abc notanumber 0\nx"):
        try:
            gorproto.decode(bad)
        except gorproto.MalformedMessage:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_splitter_handles_separators_split_across_reads() -> None:
    stream = b"".join(gorproto.encode(b"req%d" % i, timestamp_ns=i) for i in range(3))
    splitter = gorproto.StreamSplitter()
    frames = []
    for i in range(0, len(stream), 5):
        frames += splitter.feed(stream[i : i + 5])
    assert [gorproto.decode(f).payload for f in frames] == [b"req0", b"req1", b"req2"]
    assert splitter.finish() is None


def test_splitter_skips_an_oversized_frame_and_recovers() -> None:
    splitter = gorproto.StreamSplitter(max_frame=100)
    frames = splitter.feed(b"1 x 1 0\n" + b"z" * 500)
    frames += splitter.feed(gorproto.SEPARATOR + gorproto.encode(b"next", timestamp_ns=1))
    assert [gorproto.decode(f).payload for f in frames] == [b"next"]
    assert splitter.oversized == 1


def test_unterminated_last_frame_is_returned_at_end_of_stream() -> None:
    splitter = gorproto.StreamSplitter()
    assert splitter.feed(b"1 x 1 0\nlast") == []
    assert splitter.finish() == b"1 x 1 0\nlast"
