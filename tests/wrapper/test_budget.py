"""How the shutdown timeout is shared by stages that run one after another."""

from __future__ import annotations

import pytest

from traffic_duplicator.wrapper.budget import STAGES, ShutdownBudget


def test_the_default_25_seconds() -> None:
    budget = ShutdownBudget(25.0)
    assert [budget.end_by(stage) for stage in STAGES] == [17.5, 21.25, 24.0]
    # What the engines are told on their command line: the most their stage can get.
    assert (budget.drain_timeout, budget.flush_timeout) == (17.5, 24.0)


def test_stages_end_in_order_and_inside_the_timeout_for_any_timeout() -> None:
    for timeout in (0.1, 1.0, 5.0, 10.0, 25.0, 3600.0):
        budget = ShutdownBudget(timeout)
        ends = [budget.end_by(stage) for stage in STAGES]
        assert 0 < ends[0] < ends[1] < ends[2] < timeout, (timeout, ends)


def test_sequential_stages_never_add_up_past_the_deadline() -> None:
    # The fault this replaces: drain and flush were each 0.6 of the timeout, one after the
    # other. Now a drain that uses its whole time still leaves the flush its share.
    budget = ShutdownBudget(25.0)
    drain_ends = budget.drain_timeout
    assert budget.end_by("replayer") - drain_ends >= 0.1 * 25.0
    assert budget.end_by("replayer") <= 25.0 - budget.last_words


def test_the_replayers_last_words_are_a_share_of_a_short_timeout() -> None:
    assert ShutdownBudget(5.0).last_words == 0.5
    assert ShutdownBudget(25.0).last_words == 1.0


def test_an_unknown_stage_is_a_bug() -> None:
    with pytest.raises(KeyError):
        ShutdownBudget(25.0).end_by("nginx")
