"""Pairing by id in either order, within count, byte and time bounds."""

from __future__ import annotations

from traffic_duplicator.compare.model import CapturedResponse
from traffic_duplicator.compare.pairing import PendingPairs, Shadow


def resp(body: bytes = b"") -> CapturedResponse:
    return CapturedResponse(200, (), body, len(body))


def shadow(output: int = 0, route: str = "GET /") -> Shadow:
    return Shadow(output, route, resp(), 0.01)


def test_production_first_then_each_shadow_pairs_and_the_entry_is_released():
    pairs = PendingPairs(answers=2)
    assert pairs.production(b"1", resp(b"p"), now=0) == []
    assert pairs.shadow(b"1", shadow(0), now=0.1) is not None
    assert len(pairs) == 1
    assert pairs.shadow(b"1", shadow(1), now=0.2) is not None
    assert len(pairs) == 0 and pairs.bytes == 0


def test_shadow_first_waits_for_production():
    pairs = PendingPairs(answers=1)
    assert pairs.shadow(b"1", shadow(), now=0) is None
    [pair] = pairs.production(b"1", resp(b"p"), now=0.5)
    assert pair.production.body == b"p"
    assert len(pairs) == 0 and pairs.bytes == 0


def test_an_unpaired_shadow_is_dropped_after_the_timeout():
    pairs = PendingPairs(answers=1, timeout=5)
    pairs.shadow(b"1", shadow(route="GET /a"), now=0)
    pairs.expire(now=4.9)
    assert pairs.take_dropped() == []
    pairs.expire(now=5.0)
    assert [s.route for s in pairs.take_dropped()] == ["GET /a"]
    assert len(pairs) == 0 and pairs.bytes == 0


def test_production_nobody_claims_expires_silently():
    pairs = PendingPairs(answers=1, timeout=5)
    pairs.production(b"1", resp(), now=0)
    pairs.expire(now=10)
    assert pairs.take_dropped() == [] and pairs.unclaimed == 1 and len(pairs) == 0


def test_the_count_bound_evicts_the_oldest():
    pairs = PendingPairs(answers=1, max_entries=3)
    for i in range(5):
        pairs.shadow(str(i).encode(), shadow(route=f"r{i}"), now=0)
    assert len(pairs) == 3
    assert [s.route for s in pairs.take_dropped()] == ["r0", "r1"]


def test_the_byte_bound_holds_whatever_arrives():
    pairs = PendingPairs(answers=2, max_bytes=10_000)
    for i in range(100):
        pairs.production(str(i).encode(), resp(b"x" * 1000), now=0)
        assert pairs.bytes <= 10_000
    assert 0 < len(pairs) < 10


def test_errors_count_as_answers():
    pairs = PendingPairs(answers=2)
    pairs.production(b"1", resp(), now=0)
    pairs.answered(b"1", now=0)
    assert pairs.shadow(b"1", shadow(1), now=0) is not None
    assert len(pairs) == 0


def test_a_destination_that_never_answers_costs_nothing_lasting():
    pairs = PendingPairs(answers=1, timeout=5, max_entries=1000)
    for i in range(100_000):
        pairs.production(i.to_bytes(4, "big"), resp(b"x" * 100), now=i / 1000)
        assert len(pairs) <= 1000
    pairs.expire(now=1000)
    assert len(pairs) == 0 and pairs.bytes == 0
