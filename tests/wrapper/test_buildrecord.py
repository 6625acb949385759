"""The build's record of its engine decision, the dyno's fallback to it, and the build's
predictions (Ruby buildpack, config vars from ENV_DIR): pure functions and small files."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from traffic_duplicator.logs import EventLog
from traffic_duplicator.wrapper.buildrecord import (
    BuildRecord,
    changed_since_build,
    env_as_built,
    parse_record,
    plan_with_fallback,
    render_record,
)
from traffic_duplicator.wrapper.engines import (
    EngineError,
    EnginePlan,
    ProxyKind,
    ReplayerKind,
)
from traffic_duplicator.wrapper.explain import (
    buildpack_list,
    dyno_env,
    predicted_on_path,
    read_env_dir,
    ruby_verdict,
)
from traffic_duplicator.wrapper.explain import main as explain_main

BUILTIN = EnginePlan(ReplayerKind.BUILTIN, "no gor", ProxyKind.BUILTIN, "no em-proxy")
RECORD = BuildRecord(
    uses_gor=False,
    summary="the built-in replayer",
    config={
        "TRAFFIC_DUPLICATOR_REPLAYER": "",
        "TRAFFIC_DUPLICATOR_PROXY": "",
        "TRAFFIC_DUPLICATOR_GOR": "",
        "BUNDLE_GEMFILE": "",
        "TRAFFIC_DUPLICATOR_COMPARE": "",
    },
)


def test_the_record_round_trips_and_sed_can_read_it() -> None:
    record = BuildRecord(
        True, "gor 1.3.3 (/app/bin/gor)", {**RECORD.config, "BUNDLE_GEMFILE": "a\\b\nc"}
    )
    text = render_record(record)
    assert "\nuses_gor=yes\n" in text
    assert "\nsummary=gor 1.3.3 (/app/bin/gor)\n" in text
    assert "config.BUNDLE_GEMFILE=a\\\\b\\nc\n" in text
    assert parse_record(text) == record


def _decider(
    failing: Mapping[str, str],
) -> tuple[list[dict[str, str]], object]:
    calls: list[dict[str, str]] = []

    def decide(env: Mapping[str, str]) -> EnginePlan:
        calls.append(dict(env))
        for name, value in failing.items():
            if env.get(name) == value:
                raise EngineError(f"{name}={value} cannot run here")
        return BUILTIN

    return calls, decide


def _log() -> tuple[io.StringIO, EventLog]:
    stream = io.StringIO()
    return stream, EventLog("traffic_duplicator", stream)


def test_a_var_changed_after_the_build_falls_back_to_what_the_build_checked() -> None:
    calls, decide = _decider({"TRAFFIC_DUPLICATOR_REPLAYER": "gor"})
    stream, log = _log()
    env = {"PORT": "5000", "TRAFFIC_DUPLICATOR_REPLAYER": "gor"}

    plan = plan_with_fallback(env, decide, RECORD, log)  # type: ignore[arg-type]

    assert plan is BUILTIN
    assert calls == [env, {"PORT": "5000"}]
    assert stream.getvalue() == (
        'traffic_duplicator at=error message="TRAFFIC_DUPLICATOR_REPLAYER=gor cannot run here" '
        'action="running the engines the build checked (TRAFFIC_DUPLICATOR_REPLAYER=(unset)); '
        'fix or unset TRAFFIC_DUPLICATOR_REPLAYER, or build again"\n'
    )


UNCHANGED = BuildRecord(False, "", {**RECORD.config, "TRAFFIC_DUPLICATOR_PROXY": "em-proxy"})


@pytest.mark.parametrize("checked", [None, UNCHANGED], ids=["no-record", "unchanged"])
def test_an_error_with_nothing_changed_or_no_record_stops_the_boot(
    checked: BuildRecord | None,
) -> None:
    _, decide = _decider({"TRAFFIC_DUPLICATOR_PROXY": "em-proxy"})
    stream, log = _log()
    env = {"TRAFFIC_DUPLICATOR_PROXY": "em-proxy"}
    with pytest.raises(EngineError, match="em-proxy cannot run here"):
        plan_with_fallback(env, decide, checked, log)  # type: ignore[arg-type]
    assert stream.getvalue() == ""


def test_when_the_checked_engines_fail_too_the_first_error_is_the_one_shown() -> None:
    _, decide = _decider({"TRAFFIC_DUPLICATOR_GOR": "/x", "TRAFFIC_DUPLICATOR_PROXY": "em-proxy"})
    record = BuildRecord(False, "", {**RECORD.config, "TRAFFIC_DUPLICATOR_PROXY": "em-proxy"})
    env = {"TRAFFIC_DUPLICATOR_GOR": "/x", "TRAFFIC_DUPLICATOR_PROXY": "em-proxy"}
    _, log = _log()
    with pytest.raises(EngineError, match="TRAFFIC_DUPLICATOR_GOR=/x"):
        plan_with_fallback(env, decide, record, log)  # type: ignore[arg-type]


def test_changed_vars_and_the_environment_as_built() -> None:
    env = {"HOME": "/app", "TRAFFIC_DUPLICATOR_GOR": " /app/gor ", "BUNDLE_GEMFILE": "x"}
    record = BuildRecord(False, "", {**RECORD.config, "TRAFFIC_DUPLICATOR_GOR": "/app/gor"})
    assert changed_since_build(env, record) == ["BUNDLE_GEMFILE"]
    assert env_as_built(env, record) == {"HOME": "/app", "TRAFFIC_DUPLICATOR_GOR": "/app/gor"}
    # A record without config lines (an older build) never triggers the fallback.
    assert changed_since_build(env, BuildRecord(False, "")) == []


def test_config_vars_come_from_env_dir_over_the_profile_defaults(tmp_path: Path) -> None:
    (tmp_path / "TRAFFIC_DUPLICATOR_PROXY").write_text("em-proxy")
    (tmp_path / "TRAFFIC_DUPLICATOR_HOME").write_text("/app/elsewhere")
    config = read_env_dir(tmp_path)
    assert config == {
        "TRAFFIC_DUPLICATOR_HOME": "/app/elsewhere",
        "TRAFFIC_DUPLICATOR_PROXY": "em-proxy",
    }
    assert dyno_env({})["TRAFFIC_DUPLICATOR_HOME"] == "/app/.traffic-duplicator"
    assert dyno_env(config)["TRAFFIC_DUPLICATOR_HOME"] == "/app/elsewhere"
    assert read_env_dir(tmp_path / "missing") == {}


@pytest.mark.parametrize(
    ("files", "config", "expected"),
    [
        ({".buildpacks": "# us\nhttps://x/traffic-duplicator\nheroku/ruby\n"}, {},
         (".buildpacks", "yes")),
        ({".buildpacks": "https://x/traffic-duplicator\nheroku/nodejs\n"}, {},
         (".buildpacks", "no")),
        ({"app.json": json.dumps({"buildpacks": [
            {"url": "https://github.com/heroku/heroku-buildpack-ruby"}]})}, {},
         ("app.json", "yes")),
        ({"app.json": json.dumps({"buildpacks": [{"url": "heroku/python"}]})}, {},
         ("app.json", "no")),
        ({"app.json": "not json"}, {}, ("none", "unknown")),
        ({}, {"BUILDPACK_URL": "https://github.com/heroku/heroku-buildpack-ruby.git"},
         ("BUILDPACK_URL", "yes")),
        ({}, {"BUILDPACK_URL": "https://github.com/heroku/heroku-buildpack-multi"},
         ("BUILDPACK_URL", "unknown")),
        ({}, {}, ("none", "unknown")),
    ],
)  # fmt: skip
def test_whether_the_ruby_buildpack_runs_is_read_from_the_apps_buildpack_list(
    tmp_path: Path, files: dict[str, str], config: dict[str, str], expected: tuple[str, str]
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    source, entries = buildpack_list(tmp_path, config)
    assert (source, ruby_verdict(source, entries)) == expected


def test_the_dyno_path_prediction(tmp_path: Path) -> None:
    assert predicted_on_path(tmp_path, "unknown")("bundle")
    assert not predicted_on_path(tmp_path, "no")("bundle")
    assert not predicted_on_path(tmp_path, "yes")("em-proxy")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "em-proxy").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "em-proxy").chmod(0o755)
    assert predicted_on_path(tmp_path, "no")("em-proxy")


def test_explain_for_a_cloud_native_buildpack_names_the_layer_and_the_workspace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, env_dir, layer = tmp_path / "app", tmp_path / "env", tmp_path / "layer"
    (app / "config").mkdir(parents=True)
    (app / "config" / "gor.options").write_text("--output-http http://staging\n")
    env_dir.mkdir()
    gor = layer / "vendor" / "gor" / "gor"
    gor.parent.mkdir(parents=True)
    gor.write_text("#!/bin/sh\necho 'Current Version: 1.3.3' >&2\nexit 2\n")
    gor.chmod(0o755)
    record = tmp_path / "record"

    status = explain_main(
        ["--explain", str(app), str(env_dir), "--record", str(record),
         "--app-dir", "/workspace", "--home", str(layer)]
    )  # fmt: skip

    assert status == 0
    out = capsys.readouterr().out
    assert (
        f'       at=engine process=replayer engine="gor --input-tcp" reason="the buildpack\'s '
        f'vendor/gor/gor {gor} (gor 1.3.3) has no --input-http (v0.15 or newer)"\n'
    ) in out
    assert parse_record(record.read_text()).uses_gor

    # With nothing there, the places it looked are named as the CNB's launch would see them.
    gor.unlink()
    assert (
        explain_main(
            ["--explain", str(app), str(env_dir), "--app-dir", "/workspace", "--home", str(layer)]
        )
        == 0
    )
    assert f"looked at /workspace/bin/gor, {gor})" in capsys.readouterr().out


def test_explain_fails_with_the_dyno_s_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "TRAFFIC_DUPLICATOR_PROXY").write_text("em-proxy")

    assert explain_main(["--explain", str(tmp_path), str(tmp_path)]) == 2

    captured = capsys.readouterr()
    assert captured.err == (
        "\n !     Error: the dyno would refuse to start: TRAFFIC_DUPLICATOR_PROXY=em-proxy but "
        "em-proxy is neither in Gemfile.lock nor on PATH; add gem 'em-proxy' to the Gemfile or "
        "set TRAFFIC_DUPLICATOR_PROXY=builtin\n\n"
    )


def test_explain_checks_the_comparison_baseline_against_the_slug_s_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, env_dir = tmp_path / "app", tmp_path / "env"
    (app / "config").mkdir(parents=True)
    (app / "config" / "gor.options").write_text("--output-http http://staging\n")
    env_dir.mkdir()
    (env_dir / "TRAFFIC_DUPLICATOR_COMPARE").write_text("on")
    (env_dir / "TRAFFIC_DUPLICATOR_COMPARE_BASELINE").write_text("http://staging")

    assert explain_main(["--explain", str(app), str(env_dir)]) == 0
    out = capsys.readouterr().out
    assert "at=engine process=hop framing=gor compare=on " in out

    (env_dir / "TRAFFIC_DUPLICATOR_COMPARE_BASELINE").write_text("2")
    assert explain_main(["--explain", str(app), str(env_dir)]) == 2
    assert capsys.readouterr().err == (
        "\n !     Error: the dyno would refuse to start: TRAFFIC_DUPLICATOR_COMPARE_BASELINE=2 "
        "is not the position of an --output-http; the outputs are 1 (http://staging)\n\n"
    )

    # The build's check shows a URL the user gave without its password.
    (env_dir / "TRAFFIC_DUPLICATOR_COMPARE_BASELINE").write_text("http://deploy:s3cretpass@h")
    assert explain_main(["--explain", str(app), str(env_dir)]) == 2
    err = capsys.readouterr().err
    assert "'http://deploy:***@h' names no --output-http" in err
    assert "s3cretpass" not in err
