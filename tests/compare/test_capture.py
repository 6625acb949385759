"""Recording responses from a byte stream, and GoReplay type 2 messages, as transcripts."""

from __future__ import annotations

import gzip
import hashlib

import pytest

from traffic_duplicator import gorproto
from traffic_duplicator.compare.capture import (
    BODY_MARKER,
    ResponseRecorder,
    decode_response,
    encode_response,
)

JSON_RESPONSE = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"id": 123}'
)
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
)


def feed_bytewise(recorder: ResponseRecorder, data: bytes):
    out = []
    for i in range(len(data)):
        out += recorder.feed(data[i : i + 1])
    return out


def test_a_content_length_response_is_recorded_whole():
    [response] = ResponseRecorder().feed(JSON_RESPONSE)
    assert response.status == 200
    assert response.header("content-type") == "application/json"
    assert response.body == b'{"id": 123}' and response.body_length == 11
    assert not response.truncated
    assert response.digest == hashlib.sha256(b'{"id": 123}').hexdigest()


@pytest.mark.parametrize("bytewise", [False, True])
def test_chunked_framing_is_removed_even_when_split_anywhere(bytewise):
    recorder = ResponseRecorder()
    stream = CHUNKED + JSON_RESPONSE
    out = feed_bytewise(recorder, stream) if bytewise else recorder.feed(stream)
    assert [r.body for r in out] == [b"hello world", b'{"id": 123}']
    assert out[0].chunked and not out[1].chunked


def test_a_body_over_the_limit_keeps_its_start_and_the_digest_of_all_of_it():
    body = bytes(range(256)) * 40
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    [response] = feed_bytewise(ResponseRecorder(body_limit=100), raw)
    assert response.truncated and response.body == body[:100]
    assert response.body_length == len(body)
    assert response.digest == hashlib.sha256(body).hexdigest()


def test_bodiless_responses_head_204_304_and_interim_1xx():
    recorder = ResponseRecorder()
    recorder.expect(head_request=True)
    recorder.expect()
    recorder.expect()
    stream = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"  # to HEAD: no body follows
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 204 No Content\r\n\r\n"
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"
    )
    assert [r.status for r in recorder.feed(stream)] == [200, 204, 304]


def test_a_body_until_close_completes_at_eof():
    recorder = ResponseRecorder()
    assert recorder.feed(b"HTTP/1.0 200 OK\r\n\r\npart one, ") == []
    assert recorder.feed(b"part two") == []
    [response] = recorder.eof()
    assert response.body == b"part one, part two"


def test_101_and_garbage_stop_recording():
    recorder = ResponseRecorder()
    assert recorder.feed(b"HTTP/1.1 101 Switching Protocols\r\n\r\n" + JSON_RESPONSE) == []
    assert recorder.stopped
    garbage = ResponseRecorder()
    assert garbage.feed(b"SSH-2.0-OpenSSH\r\n\r\n") == []
    assert garbage.stopped


def test_pipelined_expectations_are_bounded():
    recorder = ResponseRecorder()
    for _ in range(1000):
        recorder.expect()
    assert recorder.overflowed == 1000 - 256


def decode_frame(frame: bytes) -> gorproto.Message:
    assert frame.endswith(gorproto.SEPARATOR)
    return gorproto.decode(frame[: -len(gorproto.SEPARATOR)])


def test_type_2_message_has_gors_header_line_and_the_raw_response():
    [response] = ResponseRecorder().feed(JSON_RESPONSE)
    frame = encode_response(
        b"a" * 24, response, latency_ns=2_782_013, timestamp_ns=1439818823587996305
    )
    assert frame.startswith(b"2 " + b"a" * 24 + b" 1439818823587996305 2782013\n")
    message = decode_frame(frame)
    assert message.payload == JSON_RESPONSE
    decoded = decode_response(message)
    assert decoded.body == response.body and decoded.latency == pytest.approx(0.002782013)


def test_a_chunked_response_is_sent_as_one_chunk_and_read_back():
    [response] = ResponseRecorder().feed(CHUNKED)
    message = decode_frame(encode_response(b"1", response, latency_ns=0))
    assert message.payload.endswith(b"\r\n\r\nb\r\nhello world\r\n0\r\n\r\n")
    assert decode_response(message).body == b"hello world"


def test_a_cut_body_carries_its_length_and_digest_in_one_marker_header():
    body = b"x" * 5000
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + body
    [response] = ResponseRecorder(body_limit=10).feed(raw)
    message = decode_frame(encode_response(b"1", response, latency_ns=1))
    assert f"{BODY_MARKER}: length=5000; sha256=".encode() in message.payload
    decoded = decode_response(message)
    assert decoded.truncated and decoded.body_length == 5000
    assert decoded.digest == hashlib.sha256(body).hexdigest()
    assert all(name != BODY_MARKER for name, _ in decoded.headers)
    assert BODY_MARKER.encode() not in decoded.head


def test_a_gor_response_without_marker_decodes_as_is():
    payload = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + gzip.compress(b"{}")
    message = gorproto.Message(gorproto.RESPONSE, b"id", 1, None, payload)
    decoded = decode_response(message)
    assert decoded.latency is None and decoded.body_length == len(payload.split(b"\r\n\r\n", 1)[1])


def test_a_payload_without_a_head_is_refused():
    with pytest.raises(ValueError):
        decode_response(gorproto.Message(gorproto.RESPONSE, b"id", 1, 0, b"HTTP/1.1 200"))
