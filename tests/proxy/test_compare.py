"""`--compare` end to end: the real proxy, a real app, a TCP recorder reading gor framing."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.proxy.servers import CORES, PATTERN, AnswersThenCloses, AppServer, Client, Sink, proxy
from tests.support import free_port, run_module, wait_until
from traffic_duplicator import gorproto
from traffic_duplicator.compare import decode_response
from traffic_duplicator.proxy.cli import parse_args

# The app sleeps this long on /slow: production's latency is at least that.
SLOW = 0.3
BIG = 100_000  # a /download body longer than the cap below


def messages(sink: Sink) -> list[gorproto.Message]:
    """Every complete GoReplay message the recorder got, connection by connection."""
    found = []
    for stream in sink.streams():
        splitter = gorproto.StreamSplitter()
        found += [gorproto.decode(frame) for frame in splitter.feed(stream)]
    return found


def test_each_mirrored_request_is_followed_by_production_s_response(tmp_path: Path) -> None:
    with (
        AppServer() as app,
        Sink() as recorder,
        proxy(
            tmp_path,
            app.port,
            f"gor://127.0.0.1:{recorder.port}",
            args=("--compare", "--compare-body-limit", "1k", "--stats-interval", "0"),
        ) as front,
    ):
        with Client(front.port, timeout=30) as client:
            assert client.request("GET", f"/slow?delay={SLOW}").status == 200
            assert client.request("POST", "/upload", body=b"x" * 5000).status == 200
            assert len(client.request("GET", f"/download?size={BIG}").body) == BIG
            assert client.request("HEAD", "/head").status == 200
        wait_until(lambda: len(messages(recorder)) == 8, timeout=20, message="8 messages")
        log_path = front.log_path
    found = messages(recorder)
    requests = {m.message_id: m for m in found if m.kind == gorproto.REQUEST}
    originals = {m.message_id: m for m in found if m.kind == gorproto.RESPONSE}
    assert len(requests) == len(originals) == 4
    assert requests.keys() == originals.keys()
    for stream in recorder.streams():  # on its connection, each type 2 follows its type 1
        ids = [(m.kind, m.message_id) for m in gorproto_messages(stream)]
        for index, (kind, message_id) in enumerate(ids):
            if kind == gorproto.RESPONSE:
                assert (gorproto.REQUEST, message_id) in ids[:index]
    by_path = {
        requests[message_id].payload.split(b" ")[1]: decode_response(original)
        for message_id, original in originals.items()
    }
    slow = by_path[f"/slow?delay={SLOW}".encode()]
    assert (slow.status, slow.body) == (200, f"GET /slow?delay={SLOW}".encode())
    assert slow.latency is not None and slow.latency >= SLOW * 0.9  # no upper bound
    upload = by_path[b"/upload"]
    assert upload.body == b"5000 " + hashlib.sha256(b"x" * 5000).hexdigest().encode()
    big = by_path[f"/download?size={BIG}".encode()]
    assert (big.body, big.body_length) == (PATTERN[:1024], BIG)
    assert big.digest == hashlib.sha256(PATTERN[:BIG]).hexdigest()
    head = by_path[b"/head"]
    assert (head.status, head.body, head.header("Content-Length")) == (200, b"", "10")
    for original in originals.values():
        header = re.fullmatch(rb"2 [0-9a-f]{24} \d{19} (\d+)", gorproto_header(original))
        assert header is not None and int(header.group(1)) == original.latency
    final = [line for line in log_path.read_text().splitlines() if line.startswith("at=stats")]
    assert "compare_sent=4 compare_dropped=0" in final[-1]


CLOSE_RESPONSE = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello"


@pytest.mark.parametrize("core", CORES)
def test_a_response_the_app_closes_after_is_recorded(tmp_path: Path, core: str) -> None:
    # The app's last bytes and its FIN come in one event: the epoll core relays them and
    # closes without tracking where the response ends, except that --compare records it.
    with (
        AnswersThenCloses(CLOSE_RESPONSE) as app,
        Sink() as recorder,
        proxy(
            tmp_path,
            app.port,
            f"gor://127.0.0.1:{recorder.port}",
            args=("--compare", "--stats-interval", "0"),
            core=core,
        ) as front,
    ):
        for i in range(3):
            with Client(front.port) as client:
                client.send(b"GET /%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % i)
                assert client.file.read() == CLOSE_RESPONSE
        wait_until(lambda: len(messages(recorder)) == 6, timeout=20, message="6 messages")
        assert "relay_bug" not in front.log()
    originals = [m for m in messages(recorder) if m.kind == gorproto.RESPONSE]
    assert [decode_response(m).body for m in originals] == [b"hello"] * 3


def gorproto_messages(stream: bytes) -> list[gorproto.Message]:
    return [gorproto.decode(frame) for frame in gorproto.StreamSplitter().feed(stream)]


def gorproto_header(message: gorproto.Message) -> bytes:
    latency = b"" if message.latency is None else b" %d" % message.latency
    return b"%s %s %d%s" % (message.kind, message.message_id, message.timestamp_ns, latency)


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["-d", "127.0.0.1:9", "--compare"], "--compare sends production's responses to gor://"),
        (["-d", "gor://127.0.0.1:9", "--compare-body-limit", "1k"], "needs --compare"),
        (
            ["-d", "gor://127.0.0.1:9", "--compare", "--compare-body-limit", "17m"],
            "--compare-body-limit '17m' is not a size from 0 to 16m",
        ),
    ],
)
def test_compare_mistakes_are_one_line(argv: list[str], error: str) -> None:
    result = run_module(
        "traffic_duplicator.proxy", "-l", str(free_port()), "-r", "127.0.0.1:9", *argv
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and error in result.stderr, result.stderr


def test_compare_flags_reach_the_configuration() -> None:
    config = parse_args(["-l", "1", "-r", "2", "-d", "gor://3", "--compare"])
    assert (config.compare, config.compare_body_limit) == (True, 64 * 1024)
    config = parse_args(
        ["-l", "1", "-r", "2", "-d", "4,gor://3", "--compare", "--compare-body-limit", "0"]
    )
    assert (config.compare, config.compare_body_limit) == (True, 0)
    assert not parse_args(["-l", "1", "-r", "2", "-d", "gor://3"]).compare
