"""TRAFFIC_DUPLICATOR_COMPARE_* settings and the baseline's resolution."""

from __future__ import annotations

import pytest

from traffic_duplicator.compare.settings import (
    CompareSettingsError,
    read_compare_settings,
    resolve_baseline,
)

OUTPUTS = ["https://staging.example.com", "https://user:pw@candidate.example.com/v2"]


def test_off_by_default_and_nothing_else_is_read_when_off():
    settings = read_compare_settings({"TRAFFIC_DUPLICATOR_COMPARE_IGNORE": "$.["})
    assert not settings.enabled


def test_on_reads_everything():
    settings = read_compare_settings(
        {
            "TRAFFIC_DUPLICATOR_COMPARE": "on",
            "TRAFFIC_DUPLICATOR_COMPARE_IGNORE": "X-Build, $.meta",
            "TRAFFIC_DUPLICATOR_COMPARE_ROUTES": "/users/:id",
            "TRAFFIC_DUPLICATOR_COMPARE_BASELINE": "1",
            "TRAFFIC_DUPLICATOR_COMPARE_INTERVAL": "30",
            "TRAFFIC_DUPLICATOR_COMPARE_BODY_LIMIT": "128k",
        }
    )
    assert settings.enabled and settings.interval == 30 and settings.body_limit == 128 * 1024
    assert "x-build" in settings.rules.ignored_headers
    assert settings.routes[0].text == "/users/:id" and settings.baseline == "1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TRAFFIC_DUPLICATOR_COMPARE", "maybe"),
        ("TRAFFIC_DUPLICATOR_COMPARE_INTERVAL", "0"),
        ("TRAFFIC_DUPLICATOR_COMPARE_INTERVAL", "soon"),
        ("TRAFFIC_DUPLICATOR_COMPARE_BODY_LIMIT", "lots"),
        ("TRAFFIC_DUPLICATOR_COMPARE_BODY_LIMIT", "1g"),
    ],
)
def test_mistakes_name_the_variable(name, value):
    env = {"TRAFFIC_DUPLICATOR_COMPARE": "on", name: value}
    with pytest.raises(CompareSettingsError, match=name):
        read_compare_settings(env)


def test_the_baseline_by_position_or_by_url_as_written():
    assert resolve_baseline(None, OUTPUTS) is None
    assert resolve_baseline("2", OUTPUTS) == 1
    assert resolve_baseline("staging.example.com", ["http://staging.example.com"]) == 0
    assert resolve_baseline("https://staging.example.com/|50%", OUTPUTS) == 0
    assert resolve_baseline("https://user:pw@candidate.example.com/v2", OUTPUTS) == 1


@pytest.mark.parametrize("baseline", ["3", "0", "https://nowhere.example.com"])
def test_an_unknown_baseline_lists_the_outputs_without_credentials(baseline):
    with pytest.raises(CompareSettingsError) as info:
        resolve_baseline(baseline, OUTPUTS)
    message = str(info.value)
    assert "TRAFFIC_DUPLICATOR_COMPARE_BASELINE" in message
    assert "1 (https://staging.example.com)" in message and "pw" not in message
