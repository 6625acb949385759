"""The ledger as transcripts: request steps and response bytes in, outcomes out, no I/O."""

from __future__ import annotations

from traffic_duplicator.proxy.ledger import Ledger

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


def ledger(limit: int = 256, body_limit: int = 1024) -> tuple[Ledger[str], Clock]:
    clock = Clock()
    return Ledger(body_limit, clock, limit), clock


def whole(book: Ledger[str], *copies: str) -> bool | None:
    """A request that starts and ends in one read, copied to `copies` (if any)."""
    assert not book.end()
    return book.copied(list(copies)) if copies else None


def test_a_whole_request_pairs_with_its_response_and_latency() -> None:
    book, clock = ledger()
    assert whole(book, "gor-1")
    clock.now += 5_000
    ((copies, response, latency),) = book.response_bytes(OK)
    assert (copies, response.status, response.body, latency) == (["gor-1"], 200, b"ok", 5_000)
    assert book.pending == 0


def test_responses_pair_in_request_order_and_uncopied_requests_keep_their_place() -> None:
    book, _ = ledger()
    whole(book, "a")
    whole(book)  # dropped by every target: still answered, in its turn
    whole(book, "c")
    outcomes = book.response_bytes(OK + NO_CONTENT + OK)
    assert [(copies, response.status) for copies, response, _ in outcomes] == [
        (["a"], 200),
        (["c"], 200),
    ]


def test_a_head_request_has_a_response_without_body() -> None:
    book, _ = ledger()
    book.head_request()
    whole(book, "head")
    whole(book, "get")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"
    outcomes = book.response_bytes(head + OK)
    assert [(c, r.body, r.body_length) for c, r, _ in outcomes] == [
        (["head"], b"", 0),
        (["get"], b"ok", 2),
    ]


def test_a_streamed_request_gets_its_copies_at_its_end() -> None:
    book, clock = ledger()
    assert not book.begin()
    clock.now += 100
    book.response_bytes(b"HTTP/1.1 100 Continue\r\n\r\n")  # interim: nothing pairs
    clock.now += 100
    assert not book.end()
    assert book.copied(["upload"])
    clock.now += 7
    ((copies, _, latency),) = book.response_bytes(OK)
    assert (copies, latency) == (["upload"], 7)


def test_a_response_before_its_request_ended_sends_nothing() -> None:
    book, _ = ledger()
    book.begin()
    too_large = b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n"
    assert book.response_bytes(too_large) == []
    book.end()
    assert not book.copied(["upload"])  # the caller counts it dropped


def test_a_cut_request_keeps_its_place_without_copies() -> None:
    book, _ = ledger()
    book.begin()
    book.cut()
    assert book.response_bytes(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") == []
    assert book.pending == 0


def test_a_body_until_close_ends_at_the_app_eof_and_a_cut_body_never() -> None:
    book, _ = ledger()
    whole(book, "old")
    assert book.response_bytes(b"HTTP/1.0 200 OK\r\n\r\npart") == []
    ((copies, response, _),) = book.app_eof()
    assert (copies, response.body) == (["old"], b"part")
    cut, _ = ledger()
    whole(cut, "x")
    assert cut.response_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart") == []
    assert cut.app_eof() == []
    assert cut.recorder is None


def test_a_tunnel_ends_recording() -> None:
    book, _ = ledger()
    whole(book, "ws")
    assert book.response_bytes(b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x00") == []
    assert book.recorder is None
    assert not whole(book, "next")


def test_after_stop_earlier_requests_still_pair_then_recording_ends() -> None:
    book, _ = ledger()
    whole(book, "before")
    book.stop()  # e.g. the next request was framed ambiguously
    assert book.recorder is not None
    ((copies, _, _),) = book.response_bytes(OK + b"HTTP/1.1 400 Bad\r\n\r\n")
    assert copies == ["before"]
    assert book.recorder is None


def test_pipelining_deeper_than_the_limit_gives_up_and_returns_the_copies() -> None:
    book, _ = ledger(limit=2)
    whole(book, "a")
    whole(book, "b")
    assert list(book.end()) == ["a", "b"]
    assert not book.copied(["c"])
    assert book.recorder is None
    assert book.response_bytes(OK) == []


def test_bytes_that_are_not_http_end_recording() -> None:
    book, _ = ledger()
    whole(book, "a")
    assert book.response_bytes(b"SSH-2.0-OpenSSH\r\n\r\n") == []
    assert book.recorder is None
