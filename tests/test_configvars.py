"""The one grammar of TRAFFIC_DUPLICATOR_* switches and seconds."""

from __future__ import annotations

import pytest

from traffic_duplicator import configvars


@pytest.mark.parametrize(
    ("raw", "default", "expected"),
    [
        ("", True, True),
        ("  ", False, False),
        ("ON", False, True),
        (" yes ", False, True),
        ("1", False, True),
        ("Off", True, False),
        ("no", True, False),
        ("0", True, False),
        ("enabled", True, None),
        ("2", False, None),
    ],
)
def test_switch_words(raw: str, default: bool, expected: bool | None) -> None:
    assert configvars.switch(raw, default) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[("", 25.0), (" 7.5 ", 7.5), ("0.1", 0.1), ("600", 600.0)],
        *[("0.05", None), ("601", None), ("nan", None), ("inf", None), ("-1", None), ("10s", None)],
    ],
)
def test_seconds_within_bounds(raw: str, expected: float | None) -> None:
    assert configvars.seconds(raw, 25.0, 0.1, 600.0) == expected
