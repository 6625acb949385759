"""Reading TRAFFIC_DUPLICATOR_* variables into settings (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from traffic_duplicator.errors import UserError
from traffic_duplicator.wrapper.settings import (
    ProxyMode,
    ReplayerMode,
    SettingsError,
    read_enabled,
    read_settings,
)


def test_defaults() -> None:
    settings = read_settings({})
    assert settings.enabled
    assert settings.options_path == Path("config/gor.options")
    assert settings.engines.replayer is ReplayerMode.AUTO
    assert settings.engines.proxy is ProxyMode.AUTO
    assert settings.engines.gor_path is None and settings.engines.home is None
    assert settings.supervision.shutdown_timeout == 25.0
    assert settings.supervision.restart_backoff_base == 1.0


@pytest.mark.parametrize("value", ["false", "0", "no", "off", "OFF", " False "])
def test_kill_switch_words(value: str) -> None:
    assert read_enabled({"TRAFFIC_DUPLICATOR_ENABLED": value}) is False


@pytest.mark.parametrize("value", ["", "true", "1", "yes", "on", "TRUE"])
def test_enabled_words(value: str) -> None:
    assert read_enabled({"TRAFFIC_DUPLICATOR_ENABLED": value}) is True


def test_an_unknown_kill_switch_word_is_refused_not_guessed() -> None:
    with pytest.raises(SettingsError, match="TRAFFIC_DUPLICATOR_ENABLED='disabled'"):
        read_enabled({"TRAFFIC_DUPLICATOR_ENABLED": "disabled"})


def test_every_setting_is_read() -> None:
    settings = read_settings(
        {
            "TRAFFIC_DUPLICATOR_REPLAYER": "GOR",
            "TRAFFIC_DUPLICATOR_PROXY": "em-proxy",
            "TRAFFIC_DUPLICATOR_GOR": "/opt/gor",
            "TRAFFIC_DUPLICATOR_HOME": "/app/.traffic-duplicator",
            "TRAFFIC_DUPLICATOR_OPTIONS": "etc/mirror.options",
            "TRAFFIC_DUPLICATOR_SHUTDOWN_TIMEOUT": "8.5",
            "TRAFFIC_DUPLICATOR_RESTART_BACKOFF_BASE": "0.25",
        }
    )
    assert settings.engines.replayer is ReplayerMode.GOR
    assert settings.engines.proxy is ProxyMode.EM_PROXY
    assert settings.engines.gor_path == "/opt/gor"
    assert settings.engines.home == Path("/app/.traffic-duplicator")
    assert settings.options_path == Path("etc/mirror.options")
    assert settings.supervision.shutdown_timeout == 8.5
    assert settings.supervision.restart_backoff_base == 0.25


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TRAFFIC_DUPLICATOR_REPLAYER", "goreplay", "use one of: auto, builtin, gor"),
        ("TRAFFIC_DUPLICATOR_PROXY", "nginx", "use one of: auto, builtin, em-proxy"),
        ("TRAFFIC_DUPLICATOR_SHUTDOWN_TIMEOUT", "25s", "not a number of seconds"),
        ("TRAFFIC_DUPLICATOR_SHUTDOWN_TIMEOUT", "nan", "not a number of seconds"),
        ("TRAFFIC_DUPLICATOR_SHUTDOWN_TIMEOUT", "99999", "not a number of seconds"),
        ("TRAFFIC_DUPLICATOR_RESTART_BACKOFF_BASE", "0", "not a number of seconds"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"{name}='{value}' .*{message}"):
        read_settings({name: value})


def test_comparison_is_off_by_default_and_read_with_the_engine_settings() -> None:
    assert read_settings({}).engines.compare is False
    assert read_settings({"TRAFFIC_DUPLICATOR_COMPARE": "on"}).engines.compare is True
    assert read_settings({"TRAFFIC_DUPLICATOR_COMPARE": "off"}).engines.compare is False
    with pytest.raises(UserError, match="TRAFFIC_DUPLICATOR_COMPARE='maybe' is not understood"):
        read_settings({"TRAFFIC_DUPLICATOR_COMPARE": "maybe"})
