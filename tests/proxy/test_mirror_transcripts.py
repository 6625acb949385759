"""A mirror target's pool as transcripts: events in, actions and state out, in fake time.

No sockets and no real time (see tests/proxy/transcript.py): each test reads as what
happened on the network and what the target did about it. The same target against
real listeners is tested in test_mirror_target.py.
"""

from __future__ import annotations

from tests.proxy.transcript import Transcript, request
from traffic_duplicator.gorproto import SEPARATOR
from traffic_duplicator.proxy.connection import LINGER_BYTES
from traffic_duplicator.proxy.health import RECONNECT_BACKOFF, REOPEN_AFTER_RESET, TargetState
from traffic_duplicator.proxy.mirror import GOR_LINGER, MAX_EXTRA_CONNECTIONS

UP, BACKING_OFF, PROBING, RESETTING = TargetState

# ---- connect ---------------------------------------------------------------------------


def test_a_request_opens_a_connection_and_goes_out_once_it_is_up() -> None:
    t = Transcript()
    assert t.send("/a") == ["dial 1"]
    assert t.counts() == (0, 0, 0)  # queued on the connection, not mirrored yet
    assert t.connect(1) == ["write 1 /a"]
    assert t.counts() == (1, 0, 0)
    assert t.target.unanswered == len(request("/a"))
    assert t.answer(1) == []
    assert t.target.unanswered == 0
    assert t.send("/b") == ["write 1 /b"]  # the pool is shared: no new connection
    assert t.state is UP


def test_requests_of_one_iteration_go_out_in_one_write() -> None:
    t = Transcript()
    t.send("/a")
    t.connect(1)
    for path in ("/b", "/c", "/d"):
        t.target.send(request(path), close=False)
    assert t.iteration() == ["write 1 /b /c /d"]
    assert t.counts() == (4, 0, 0)


def test_the_pool_grows_only_when_its_connections_are_busy() -> None:
    t = Transcript(connections=2)
    t.send("/a")
    t.connect(1)
    t.backlog(1, 5000)  # the kernel has not taken all of /a yet
    assert t.send("/b") == ["dial 2"]
    assert t.connect(2) == ["write 2 /b"]
    t.backlog(2, 5000)
    # Both busy and the pool full: the next free one in turn takes it, even if behind.
    assert t.send("/c") == ["write 1 /c"]


def test_an_attempt_that_hangs_times_out_and_backs_off() -> None:
    t = Transcript()
    t.send("/a")
    assert t.advance(2.9) == []
    assert t.advance(1.0) == ["cancel 1", "log mirror_error error=connect timed out"]
    assert t.state is BACKING_OFF
    assert t.counts() == (0, 0, 1)


# ---- backoff and probes ------------------------------------------------------------------


def test_a_refusing_target_fails_requests_at_once_and_probes_once_per_delay() -> None:
    t = Transcript()
    t.send("/a")
    assert t.refuse(1) == ["log mirror_error error=Connection refused"]
    assert (t.state, t.counts()) == (BACKING_OFF, (0, 0, 1))
    # Down: no attempt before the first delay, and nothing waits anywhere.
    assert t.send("/b") == []
    t.advance(0.04)
    assert t.send("/c") == []
    assert t.counts() == (0, 0, 3)
    t.advance(0.02)  # past the first delay (50 ms)
    assert t.send("/d") == ["dial 2"]
    assert t.state is PROBING
    assert t.send("/e") == []  # queued on the probe: one attempt at a time
    assert t.refuse(2) == []  # the same error again within 5 s: rate limited
    assert (t.state, t.counts()) == (BACKING_OFF, (0, 0, 5))
    t.advance(0.09)  # the second delay is 100 ms
    assert t.send("/f") == []
    t.advance(0.02)
    assert t.send("/g") == ["dial 3"]
    assert t.connect(3) == ["log mirror_up attempts=3", "write 3 /g"]
    assert (t.state, t.counts()) == (UP, (1, 0, 6))


def test_delays_double_to_the_cap_while_the_target_stays_down() -> None:
    t = Transcript()
    for _ in range(600):  # 6 s of requests, one every 10 ms; every attempt refused
        if t.send("/r"):
            t.refuse(len(t.conns))
        t.advance(0.01)
    gaps = [b - a for a, b in zip(t.dialed_at, t.dialed_at[1:])]
    expected = [RECONNECT_BACKOFF.delay(n) for n in range(len(gaps))]
    assert expected[:7] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    # Requests come every 10 ms, so an attempt waits for the first one after its delay
    # (1e-6: the float error of differences of loop times).
    assert all(delay - 1e-6 <= gap <= delay + 0.0101 for gap, delay in zip(gaps, expected))


def test_a_target_that_comes_back_is_mirrored_within_one_capped_delay() -> None:
    t = Transcript()
    back_at = t.loop.now + 10.0  # long enough down for the delay to reach its cap
    written_at = None
    while written_at is None:
        if t.send("/r") == [f"dial {len(t.conns)}"]:
            if t.loop.now < back_at:
                t.refuse(len(t.conns))
            elif any(a.startswith("write") for a in t.connect(len(t.conns))):
                written_at = t.loop.now
        t.advance(0.02)
    # The bound: back to mirroring within one capped delay (plus a connect, 0 here).
    assert written_at - back_at <= RECONNECT_BACKOFF.cap
    assert t.state is UP


def test_a_probe_owned_by_a_stream_fails_other_requests_and_a_cut_probe_is_replaced() -> None:
    t = Transcript()
    t.send("/a")
    t.refuse(1)
    t.advance(0.1)
    probe = t.begin("/upload", 100)
    assert probe is not None
    assert (t.take(), t.state) == (["dial 2"], PROBING)
    assert t.send("/b") == []  # the probe carries a stream: nothing may interleave
    assert t.counts() == (0, 0, 2)
    t.target.abandon(probe)  # the client went away mid-upload
    assert t.iteration() == ["cancel 2"]
    assert t.state is BACKING_OFF
    assert t.send("/c") == ["dial 3"]  # the delay is long over: a new probe at once


def test_a_reset_by_the_target_backs_off_like_a_refusal() -> None:
    t = Transcript()
    t.send("/a")
    t.connect(1)
    assert t.lose(1, ConnectionResetError("Connection reset by peer")) == [
        "abort 1",
        "log mirror_error error=Connection reset by peer",
    ]
    # /a was not answered: it did not arrive after all.
    assert (t.state, t.counts()) == (BACKING_OFF, (0, 0, 1))
    assert t.send("/b") == []
    t.advance(0.06)
    assert t.send("/c") == ["dial 2"]


# ---- drops -----------------------------------------------------------------------------


def test_unanswered_raw_copies_count_as_behind_until_answered() -> None:
    t = Transcript(buffer_bytes=1000)
    size = len(request("/p1", 300))
    t.send("/p0")
    t.connect(1)
    t.answer(1)
    for n in (1, 2, 3):
        assert t.send(f"/p{n}", 300) == [f"write 1 /p{n}"]
    assert t.target.unanswered == 3 * size >= 1000
    assert t.send("/p4", 300) == ["log mirror_drop reason=behind"]
    assert t.answer(1, 2) == []
    assert t.target.unanswered == size
    assert t.send("/p5", 300) == ["write 1 /p5"]
    assert t.counts() == (5, 1, 0)


def test_bytes_waiting_for_a_connection_count_as_behind() -> None:
    t = Transcript(buffer_bytes=1000)
    assert t.send("/p1", 300) == ["dial 1"]
    assert t.send("/p2", 300) == ["dial 2"]  # the first is still connecting
    assert t.send("/p3", 300) == []  # queued on the first again, in turn
    assert t.send("/p4", 300) == ["log mirror_drop reason=behind"]
    assert t.connect(1) == ["write 1 /p1 /p3"]
    assert t.counts() == (2, 1, 0)


def test_gor_copies_linger_to_share_one_send() -> None:
    t = Transcript(gor=True)
    t.send("/a")
    t.connect(1)
    for path in ("/b", "/c", "/d"):  # three iterations within the linger
        t.target.send(request(path), close=False)
        t.loop.run_soon()
    assert t.take() == []
    t.loop.advance(GOR_LINGER)
    assert t.take() == ["write 1 /b /c /d"]


def test_gor_copies_past_the_linger_bytes_go_at_the_iterations_end() -> None:
    t = Transcript(gor=True, buffer_bytes=1 << 20)
    t.send("/a")
    t.connect(1)
    t.target.send(request("/small"), close=False)
    t.loop.run_soon()
    assert t.take() == []
    t.target.send(request("/big", LINGER_BYTES), close=False)
    t.loop.run_soon()
    assert t.take() == ["write 1 /small /big"]
    t.loop.advance(GOR_LINGER)
    assert t.take() == []  # the linger's timer was cancelled


def test_bytes_waiting_for_a_connection_do_not_cut_the_linger_short() -> None:
    # They cannot leave before their connection is up: flushing early would only cost
    # the connected ones their shared send.
    t = Transcript(gor=True, connections=2, buffer_bytes=1 << 20)
    t.send("/a")
    t.connect(1)
    t.backlog(1, 5000)  # busy: the big copy opens a second connection
    assert t.send("/big", LINGER_BYTES) == ["dial 2"]
    t.backlog(1, 0)
    t.target.send(request("/small"), close=False)
    t.loop.run_soon()
    assert t.take() == []
    t.loop.advance(GOR_LINGER)
    assert t.take() == ["write 1 /small"]
    assert t.connect(2) == ["write 2 /big"]


def test_close_cancels_the_linger() -> None:
    t = Transcript(gor=True)
    t.send("/a")
    t.connect(1)
    t.target.send(request("/b"), close=False)
    t.loop.run_soon()
    t.target.close()
    assert t.take() == ["close 1"]  # the corked copy is abandoned, as close() says
    t.loop.advance(GOR_LINGER)
    assert t.take() == []


def test_a_gor_target_counts_only_its_own_buffers() -> None:
    t = Transcript(gor=True, buffer_bytes=1000)
    t.send("/a")
    t.connect(1)
    for n in range(5):  # gor never answers: nothing is held as unanswered
        assert t.send(f"/g{n}", 300) == [f"write 1 /g{n}"]
    assert t.target.unanswered == 0
    t.backlog(1, 1200)  # the kernel holds 1200 bytes the target has not read
    assert t.send("/h", 300) == ["log mirror_drop reason=behind"]
    t.backlog(1, 0)
    assert t.send("/i", 300) == ["write 1 /i"]


def test_open_connections_are_capped_even_when_each_request_retires_its_own() -> None:
    t = Transcript(buffer_bytes=1 << 20, connections=2)
    limit = 2 + MAX_EXTRA_CONNECTIONS
    for n in range(1, limit + 1):  # Connection: close clients, a target slow to answer
        assert t.send(f"/c{n}", close=True) == [f"dial {n}"]
        assert t.connect(n) == [f"write {n} /c{n}"]
    assert t.send("/over", close=True) == ["log mirror_drop reason=connections"]
    t.answer(1)
    assert t.lose(1) == ["abort 1"]  # the target closed it: a slot is free again
    assert t.send("/next", close=True) == [f"dial {limit + 1}"]


def test_gor_payloads_holding_the_separator_are_dropped_not_framed() -> None:
    t = Transcript(gor=True)
    t.send("/a")
    t.connect(1)
    t.target.send(b"POST /x HTTP/1.1\r\nContent-Length: 14\r\n\r\n" + SEPARATOR, False)
    assert t.iteration() == ["log mirror_drop reason=separator"]
    conn = t.begin("/y", 20)
    assert conn is not None
    assert t.iteration() == ["write 1 /y"]
    t.target.stream(conn, b"abc" + SEPARATOR[:1])
    t.target.stream(conn, SEPARATOR[1:] + b"tail")  # split across two reads
    assert t.iteration() == ["abort 1"]  # rate limited: the drop is counted, not logged
    assert t.counts() == (1, 2, 0)
    assert t.state is UP  # a bad payload says nothing about the target


# ---- retire ----------------------------------------------------------------------------


def test_connection_close_retires_a_raw_connection_without_a_half_close() -> None:
    t = Transcript()
    t.send("/a")
    t.connect(1)
    assert t.send("/last", close=True) == ["write 1 /last"]
    assert t.send("/b") == ["dial 2"]  # nothing may follow /last on connection 1
    t.connect(2)
    t.answer(1, 2)
    assert t.lose(1) == ["abort 1"]
    assert t.counts() == (3, 0, 0)


def test_a_retired_connection_the_target_never_closes_is_cut_after_the_linger() -> None:
    t = Transcript()
    t.send("/a", close=True)
    t.connect(1)
    assert t.advance(29.0) == []
    assert t.advance(2.0) == ["abort 1"]
    assert t.target.unanswered == 0  # its copies are no longer counted as behind


def test_a_target_that_closes_early_teaches_its_request_limit() -> None:
    t = Transcript()
    t.send("/a")
    t.connect(1)
    t.send("/b")
    t.send("/c")
    t.answer(1, 2)
    assert t.lose(1) == [
        "abort 1",
        "log mirror_error error=target closed a connection with requests unanswered"
        " requests_per_connection=2",
    ]
    assert t.counts() == (2, 0, 1)  # /c was lost with the connection
    assert t.state is UP  # a clean close is not a failure to connect
    assert t.send("/d") == ["dial 2"]
    t.connect(2)
    # The second request reaches the limit: a half-close after it, before the target's.
    assert t.send("/e") == ["write 2 /e", "eof 2"]
    assert t.send("/f") == ["dial 3"]


def test_a_surplus_connection_is_let_go_after_its_stream() -> None:
    for gor, finish in ((False, "eof 1"), (True, "close 1")):
        t = Transcript(gor=gor, connections=1)
        t.send("/a")
        t.connect(1)
        stream = t.begin("/up", 10)
        assert stream is not None
        assert t.iteration() == ["write 1 /up"]
        assert t.send("/b") == ["dial 2"]  # the pool's one connection is owned
        t.connect(2)
        t.target.stream(stream, b"0123456789")
        t.target.end(stream)
        # gor ends the message with its separator.
        tail = 10 + (len(SEPARATOR) if gor else 0)
        assert t.iteration() == [f"write 1 {tail}B", finish]


# ---- reset ------------------------------------------------------------------------------


def test_a_stream_that_falls_behind_is_reset_then_no_connection_opens_for_a_pause() -> None:
    t = Transcript(buffer_bytes=10_000)
    t.send("/a")
    t.connect(1)
    t.answer(1)
    stream = t.begin("/big", 1_000_000)
    assert stream is not None
    assert t.iteration() == ["write 1 /big"]
    t.backlog(1, 20_000)  # the target stopped reading
    t.target.stream(stream, b"z" * 5000)
    assert t.iteration() == ["abort 1", "log mirror_drop reason=behind"]
    assert (t.state, t.counts()) == (RESETTING, (1, 1, 0))
    assert t.target.buffered() == 0  # its bytes were let go
    assert t.begin("/next", 5) is None  # no connection left, and none may be opened yet
    assert t.counts() == (1, 2, 0)
    t.advance(REOPEN_AFTER_RESET + 0.01)
    assert t.begin("/later", 5) is not None
    assert (t.take(), t.state) == (["dial 2"], UP)


def test_requests_queued_on_a_connection_cut_before_it_is_up_are_counted() -> None:
    # Every request ends mirrored, dropped or failed, even one queued on a connection
    # that a stream sharing it gets reset (or abandoned) before it is established.
    for cut, counts in (("reset", (0, 3, 0)), ("abandon", (0, 2, 0)), ("refuse", (0, 0, 3))):
        t = Transcript(buffer_bytes=10_000)
        t.target.send(request("/a"), close=False)
        t.target.send(request("/b"), close=False)
        stream = t.begin("/big", 1_000_000)  # the same iteration: the same connection
        assert stream is t.conn(1)
        if cut == "reset":
            t.target.stream(stream, b"z" * 20_000)  # over the cap while it connects
        elif cut == "abandon":
            t.target.abandon(stream)
        else:
            t.refuse(1)
        t.iteration()
        assert t.counts() == counts, cut


def test_a_stream_that_keeps_up_is_never_reset() -> None:
    t = Transcript(buffer_bytes=10_000)
    t.send("/a")
    t.connect(1)
    stream = t.begin("/big", 100_000)
    assert stream is not None
    assert t.iteration() == ["write 1 /big"]
    for _ in range(20):  # ten times the cap, read as fast as it comes
        t.target.stream(stream, b"y" * 5000)
        assert t.iteration() == ["write 1 5000B"]
    t.target.end(stream)
    assert t.iteration() == []
    assert t.counts() == (2, 0, 0)
    assert t.target.unanswered == len(request("/a")) + 64 * 1024  # the stream's weight


# ---- shutdown --------------------------------------------------------------------------


def test_close_cancels_attempts_and_closes_or_aborts_connections() -> None:
    t = Transcript(connections=3)
    t.send("/a")
    t.connect(1)
    t.backlog(1, 100)
    t.send("/b")
    t.connect(2)
    t.backlog(2, 100)
    t.send("/c")  # a third, still connecting
    t.backlog(1, 0)
    t.take()
    t.target.close()
    # A flushed connection gets a FIN; one still holding bytes is reset.
    assert sorted(t.take()) == ["abort 2", "cancel 3", "close 1"]
    assert t.advance(60.0) == []  # no watchdog left running
    # /c never left: counted dropped, so mirrored + dropped + failed is every request.
    assert t.counts() == (2, 1, 0)
