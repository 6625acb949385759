"""Engine choice and command lines: pure functions, plus discovery on a scratch directory."""

from __future__ import annotations

import itertools
import os
import stat
import sys
from pathlib import Path

import pytest

from traffic_duplicator.wrapper.discovery import AppDir, Site, discover_engines, gather_facts
from traffic_duplicator.wrapper.engines import (
    EngineError,
    EngineFacts,
    EnginePlan,
    EngineTuning,
    GorBinary,
    ProxyKind,
    ReplayerKind,
    choose_engines,
    decision_events,
    engine_commands,
)
from traffic_duplicator.wrapper.ports import PortPlan
from traffic_duplicator.wrapper.settings import EngineSettings, ProxyMode, ReplayerMode

OLD_GOR = GorBinary(
    "/app/bin/gor", "the app's bin/gor", help_text="  -input-http value\n  -output-http value\n"
)
NEW_GOR = GorBinary(
    "/bp/vendor/gor/gor", "the buildpack's vendor/gor/gor", help_text="  --input-tcp value\n"
)
BROKEN_GOR = GorBinary("/app/bin/gor", "the app's bin/gor", problem="Exec format error")
PORTS = PortPlan(5000, 5001, 5002)
OPTIONS = ("--output-http", "http://staging.example.com")
TUNING = EngineTuning(drain_timeout=15, flush_timeout=15)


def settings(replayer: str = "auto", proxy: str = "auto", compare: bool = False) -> EngineSettings:
    return EngineSettings(replayer=ReplayerMode(replayer), proxy=ProxyMode(proxy), compare=compare)


def facts(**kw: object) -> EngineFacts:
    kw.setdefault("gor_searched", ("/app/bin/gor", "/bp/vendor/gor/gor"))
    return EngineFacts(**kw)  # type: ignore[arg-type]


BUNDLED = {"lockfile_lists_em_proxy": "Gemfile.lock", "bundle_on_path": True}


def test_nothing_installed_runs_both_builtin_engines_over_gor_framing() -> None:
    plan = choose_engines(settings(), facts())
    assert (plan.replayer, plan.proxy) == (ReplayerKind.BUILTIN, ProxyKind.BUILTIN)
    assert "no gor binary found" in plan.replayer_reason
    assert "Gemfile.lock" in plan.proxy_reason
    cmds = engine_commands(plan, PORTS, OPTIONS, "/py", TUNING)
    assert cmds.replayer == (
        "/py", "-m", "traffic_duplicator.replay", "--input-tcp", "127.0.0.1:5002",
        "--flush-timeout", "15s", *OPTIONS,
    )  # fmt: skip
    assert cmds.proxy == (
        "/py", "-m", "traffic_duplicator.proxy", "-l", "5000", "-r", "127.0.0.1:5001",
        "-d", "gor://127.0.0.1:5002", "--drain-timeout", "15",
    )  # fmt: skip


def test_bundled_em_proxy_is_run_as_designed_and_feeds_http_to_the_builtin_replayer() -> None:
    plan = choose_engines(settings(), facts(**BUNDLED))
    assert plan.proxy is ProxyKind.BUNDLED_EM_PROXY
    assert plan.proxy_reason == "Gemfile.lock lists em-proxy"
    cmds = engine_commands(plan, PORTS, OPTIONS, "/py", TUNING)
    assert cmds.proxy == (
        "bundle", "exec", "em-proxy", "-l", "5000", "-r", "127.0.0.1:5001", "-d", "127.0.0.1:5002",
    )  # fmt: skip
    assert cmds.replayer[3:5] == ("--input-http", "127.0.0.1:5002")


def test_old_gor_runs_exactly_as_designed() -> None:
    plan = choose_engines(settings(), facts(gor=OLD_GOR, **BUNDLED))
    assert plan.replayer is ReplayerKind.GOR_INPUT_HTTP
    assert "lists --input-http" in plan.replayer_reason
    cmds = engine_commands(plan, PORTS, OPTIONS, "/py", TUNING)
    assert cmds.replayer == ("/app/bin/gor", "--input-http", "127.0.0.1:5002", *OPTIONS)


def test_old_gor_behind_the_builtin_proxy_gets_raw_http() -> None:
    plan = choose_engines(settings(), facts(gor=OLD_GOR))
    cmds = engine_commands(plan, PORTS, OPTIONS, "/py", TUNING)
    assert cmds.proxy[cmds.proxy.index("-d") + 1] == "127.0.0.1:5002"


def test_new_gor_takes_gor_framing_from_the_builtin_proxy() -> None:
    plan = choose_engines(settings(), facts(gor=NEW_GOR))
    assert plan.replayer is ReplayerKind.GOR_INPUT_TCP
    cmds = engine_commands(plan, PORTS, OPTIONS, "/py", TUNING)
    assert cmds.replayer == ("/bp/vendor/gor/gor", "--input-tcp", "127.0.0.1:5002", *OPTIONS)
    assert cmds.proxy[cmds.proxy.index("-d") + 1] == "gor://127.0.0.1:5002"


def test_explicit_em_proxy_and_explicit_new_gor_are_refused() -> None:
    with pytest.raises(EngineError, match="em-proxy can only feed a replayer with --input-http"):
        choose_engines(settings("gor", "em-proxy"), facts(gor=NEW_GOR, **BUNDLED))


def test_explicit_em_proxy_and_options_that_need_gor_are_refused() -> None:
    with pytest.raises(EngineError, match=r"options need a real gor \(--input-raw\)"):
        choose_engines(
            settings("auto", "em-proxy"),
            facts(gor=NEW_GOR, real_gor_flags=("--input-raw",), **BUNDLED),
        )


def test_bundled_em_proxy_with_a_new_gor_on_auto_keeps_em_proxy_and_builtin_replayer() -> None:
    plan = choose_engines(settings(), facts(gor=NEW_GOR, **BUNDLED))
    assert (plan.replayer, plan.proxy) == (ReplayerKind.BUILTIN, ProxyKind.BUNDLED_EM_PROXY)
    assert "em-proxy can only feed" in plan.replayer_reason


def test_explicit_gor_moves_an_auto_proxy_to_builtin() -> None:
    plan = choose_engines(settings("gor"), facts(gor=NEW_GOR, **BUNDLED))
    assert (plan.replayer, plan.proxy) == (ReplayerKind.GOR_INPUT_TCP, ProxyKind.BUILTIN)


def test_options_needing_gor_move_an_auto_proxy_to_builtin() -> None:
    plan = choose_engines(
        settings(), facts(gor=NEW_GOR, real_gor_flags=("--middleware",), **BUNDLED)
    )
    assert plan.proxy is ProxyKind.BUILTIN


def test_explicit_gor_without_a_binary_names_where_it_looked() -> None:
    with pytest.raises(
        EngineError, match=r"no gor binary found \(looked at /app/bin/gor, /bp/vendor/gor/gor\)"
    ):
        choose_engines(settings("gor"), facts())


def test_a_gor_that_cannot_answer_help_falls_back_on_auto_and_fails_when_explicit() -> None:
    plan = choose_engines(settings(), facts(gor=BROKEN_GOR))
    assert plan.replayer is ReplayerKind.BUILTIN
    assert "did not answer --help (Exec format error)" in plan.replayer_reason
    with pytest.raises(EngineError, match="did not answer --help"):
        choose_engines(settings("gor"), facts(gor=BROKEN_GOR))


def test_a_bad_gor_setting_is_an_error_unless_the_builtin_replayer_is_asked_for() -> None:
    bad = facts(gor_setting_problem="TRAFFIC_DUPLICATOR_GOR=/nope is not an executable file")
    with pytest.raises(EngineError, match="/nope"):
        choose_engines(settings(), bad)
    assert choose_engines(settings("builtin"), bad).replayer is ReplayerKind.BUILTIN


def test_builtin_settings_ignore_what_is_installed() -> None:
    plan = choose_engines(settings("builtin", "builtin"), facts(gor=OLD_GOR, **BUNDLED))
    assert (plan.replayer, plan.proxy) == (ReplayerKind.BUILTIN, ProxyKind.BUILTIN)
    assert plan.replayer_reason == "TRAFFIC_DUPLICATOR_REPLAYER=builtin"


def test_explicit_em_proxy_falls_back_to_path_then_fails_with_the_fix() -> None:
    plan = choose_engines(settings("auto", "em-proxy"), facts(em_proxy_on_path=True))
    assert plan.proxy is ProxyKind.EM_PROXY
    assert engine_commands(plan, PORTS, (), "/py", EngineTuning(1, 1)).proxy[0] == "em-proxy"
    with pytest.raises(EngineError, match=r"neither in Gemfile.lock nor on PATH.*gem 'em-proxy'"):
        choose_engines(settings("auto", "em-proxy"), facts())


def test_auto_without_bundle_uses_the_builtin_proxy_and_says_why() -> None:
    plan = choose_engines(settings(), facts(lockfile_lists_em_proxy="Gemfile.lock"))
    assert plan.proxy is ProxyKind.BUILTIN
    assert "bundle is not on PATH" in plan.proxy_reason


def write_gor(path: Path, help_text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stderr.write({help_text!r})\nsys.exit(2)\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_discovery_prefers_the_setting_then_bin_gor_then_vendor(tmp_path: Path) -> None:
    app, home = tmp_path / "app", tmp_path / "bp"
    write_gor(home / "vendor" / "gor" / "gor", "  -input-tcp value\n")
    env = {"PATH": os.environ["PATH"]}
    found = discover_engines(EngineSettings(home=home), env, app, tmp_path)
    assert found.gor is not None and found.gor.found_at == "the buildpack's vendor/gor/gor"
    assert not found.gor.speaks_input_http
    write_gor(app / "bin" / "gor", "Usage of gor:\n  -input-http value\n")
    found = discover_engines(EngineSettings(home=home), env, app, tmp_path)
    assert found.gor is not None and found.gor.found_at == "the app's bin/gor"
    assert found.gor.speaks_input_http
    explicit = tmp_path / "elsewhere" / "gor"
    write_gor(explicit, "--input-tcp\n")
    found = discover_engines(EngineSettings(gor_path=str(explicit), home=home), env, app, tmp_path)
    assert found.gor is not None and found.gor.path == str(explicit)
    missing = discover_engines(EngineSettings(gor_path=str(tmp_path / "nope")), env, app, tmp_path)
    assert missing.gor_setting_problem is not None and "nope" in missing.gor_setting_problem


def test_discovery_reads_the_lockfile_and_path(tmp_path: Path) -> None:
    (tmp_path / "Gemfile.lock").write_text(
        "GEM\n  specs:\n    em-proxy (0.1.9)\n      eventmachine\n\nDEPENDENCIES\n  em-proxy\n"
    )
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("bundle",):
        exe = bindir / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    found = discover_engines(EngineSettings(), {"PATH": str(bindir)}, tmp_path, tmp_path)
    assert found.lockfile_lists_em_proxy == "Gemfile.lock"
    assert found.bundle_on_path and not found.em_proxy_on_path
    (tmp_path / "Gemfile.lock").write_text("GEM\n  specs:\n    em-proxy-extras (1.0)\n")
    found = discover_engines(EngineSettings(), {"PATH": str(bindir)}, tmp_path, tmp_path)
    assert found.lockfile_lists_em_proxy is None


# The whole cross product of what the user sets and what is installed: every combination
# either gives a plan that keeps the pairing rules, or one EngineError (a line at boot and
# at build), never anything else.
GORS = {"none": None, "old": OLD_GOR, "new": NEW_GOR, "broken": BROKEN_GOR}
LOCKS: dict[str, dict[str, object]] = {
    "no-lock": {},
    "lock": BUNDLED,
    "lock-no-bundle": {"lockfile_lists_em_proxy": "Gemfile.lock"},
    "em-proxy-on-path": {"em_proxy_on_path": True},
}
# replayer, proxy, gor, lock, options that need a real gor
Combination = tuple[str, str, str, str, tuple[str, ...]]
COMBINATIONS: list[Combination] = list(
    itertools.product(
        [m.value for m in ReplayerMode],
        [m.value for m in ProxyMode],
        sorted(GORS),
        sorted(LOCKS),
        [(), ("--middleware",)],
    )
)
EVERY_COMBINATION = pytest.mark.parametrize(
    "combo",
    COMBINATIONS,
    ids=["-".join(c[:4]) + ("-needs-gor" if c[4] else "") for c in COMBINATIONS],
)


def decide(combo: Combination, *, compare: bool) -> EnginePlan | EngineError:
    """The plan for one combination, or the error that refuses it."""
    replayer, proxy, gor, lock, needs_gor = combo
    found = facts(gor=GORS[gor], real_gor_flags=needs_gor, **LOCKS[lock])
    try:
        return choose_engines(settings(replayer, proxy, compare), found)
    except EngineError as exc:
        assert str(exc) and "\n" not in str(exc)
        return exc


@EVERY_COMBINATION
def test_every_combination_decides_by_the_pairing_rules(combo: Combination) -> None:
    replayer, proxy, gor, _, _ = combo
    plan = decide(combo, compare=False)
    if isinstance(plan, EngineError):
        return
    assert not plan.compare
    # em-proxy only ever feeds a replayer that reads raw HTTP.
    if plan.proxy is not ProxyKind.BUILTIN:
        assert plan.replayer is not ReplayerKind.GOR_INPUT_TCP
        assert not plan.gor_framing
    # The built-in proxy uses GoReplay framing unless an old gor can only read HTTP.
    if plan.proxy is ProxyKind.BUILTIN:
        assert plan.gor_framing == (plan.replayer is not ReplayerKind.GOR_INPUT_HTTP)
    # What the user named explicitly is what runs.
    if replayer == "builtin":
        assert plan.replayer is ReplayerKind.BUILTIN
    if replayer == "gor":
        assert plan.uses_gor
    if proxy == "builtin":
        assert plan.proxy is ProxyKind.BUILTIN
    if proxy == "em-proxy":
        assert plan.proxy is not ProxyKind.BUILTIN
    # A gor that did not answer --help is never run.
    if gor == "broken":
        assert not plan.uses_gor
    assert plan.replayer_reason and plan.proxy_reason


def test_decision_events_are_the_three_at_engine_lines() -> None:
    plan = choose_engines(settings(), facts(gor=OLD_GOR))
    assert decision_events(plan) == (
        {
            "at": "engine",
            "process": "replayer",
            "engine": "gor --input-http",
            "reason": "the app's bin/gor /app/bin/gor (gor version unknown) lists --input-http "
            "(v0.14 or older)",
        },
        {
            "at": "engine",
            "process": "proxy",
            "engine": "builtin",
            "reason": "the app does not bundle em-proxy (not in Gemfile.lock)",
        },
        {
            "at": "engine",
            "process": "hop",
            "framing": "http",
            "reason": "the replayer reads raw HTTP (--input-http)",
        },
    )


@pytest.mark.parametrize(
    ("help_text", "version"),
    [
        ("Gor is a simple http traffic replication tool written in Go.\nCurrent Version: 0.14.1\n",
         "0.14.1"),
        ("Current Version: v1.3.3\n\n  -input-tcp value\n", "1.3.3"),
        ("Usage of gor:\n  -input-tcp value\n", None),
    ],
)  # fmt: skip
def test_gor_version_is_read_from_its_usage(help_text: str, version: str | None) -> None:
    assert GorBinary("/g", "here", help_text=help_text).version == version


def test_discovery_reads_the_lockfile_bundle_gemfile_names(tmp_path: Path) -> None:
    (tmp_path / "Gemfile.lock").write_text("GEM\n  specs:\n    puma (6.4.2)\n")
    (tmp_path / "gemfiles").mkdir()
    (tmp_path / "gemfiles" / "em.gemfile.lock").write_text("GEM\n  specs:\n    em-proxy (0.1.9)\n")
    env = {"PATH": "", "BUNDLE_GEMFILE": "gemfiles/em.gemfile"}
    found = discover_engines(EngineSettings(), env, tmp_path, tmp_path)
    assert found.lockfile_lists_em_proxy == "gemfiles/em.gemfile.lock"
    absolute = {"PATH": "", "BUNDLE_GEMFILE": str(tmp_path / "Gemfile")}
    assert (
        discover_engines(EngineSettings(), absolute, tmp_path, tmp_path).lockfile_lists_em_proxy
        is None
    )


def test_the_build_sees_the_slug_but_names_paths_as_the_dyno_does(tmp_path: Path) -> None:
    app = AppDir(tmp_path, Path("/app"))
    assert app.locate("/app/tools/gor") == tmp_path / "tools" / "gor"
    assert app.locate("tools/gor") == tmp_path / "tools" / "gor"
    assert app.locate("/usr/local/bin/gor") == Path("/usr/local/bin/gor")
    assert app.show(tmp_path / "bin" / "gor") == "/app/bin/gor"
    assert app.show_relative(tmp_path / "Gemfile.lock") == "Gemfile.lock"
    write_gor(tmp_path / "tools" / "gor", "Current Version: 1.3.3\n  -input-tcp value\n")
    site = Site(app, tmp_path / ".traffic-duplicator", lambda name: False)
    found = gather_facts(EngineSettings(gor_path="/app/tools/gor"), {}, site)
    assert found.gor == GorBinary(
        "/app/tools/gor",
        "TRAFFIC_DUPLICATOR_GOR",
        help_text="Current Version: 1.3.3\n  -input-tcp value\n",
    )
    assert found.gor_searched == ("/app/tools/gor",)


COMPARE_ON = "TRAFFIC_DUPLICATOR_COMPARE=on needs the built-in proxy and replayer"


@EVERY_COMBINATION
def test_with_comparison_every_combination_runs_both_builtin_engines_or_says_why_not(
    combo: Combination,
) -> None:
    outcome = decide(combo, compare=True)
    if isinstance(outcome, EngineError):
        # Refused only for what comparison cannot run with: a named engine, gor's options.
        assert str(outcome).startswith(COMPARE_ON)
        assert combo[0] == "gor" or combo[1] == "em-proxy" or combo[4]
        return
    plan = outcome
    assert (plan.replayer, plan.proxy, plan.compare) == (
        ReplayerKind.BUILTIN, ProxyKind.BUILTIN, True,
    )  # fmt: skip
    assert plan.gor_framing and plan.gor_path is None


def test_comparison_runs_both_builtin_engines_and_gives_the_proxy_its_flag() -> None:
    plan = choose_engines(settings(compare=True), facts())
    assert (plan.replayer, plan.proxy, plan.compare) == (
        ReplayerKind.BUILTIN, ProxyKind.BUILTIN, True,
    )  # fmt: skip
    assert plan.replayer_reason == "TRAFFIC_DUPLICATOR_COMPARE=on needs the built-in replayer"
    assert plan.proxy_reason == "TRAFFIC_DUPLICATOR_COMPARE=on needs the built-in proxy"
    tuning = EngineTuning(15, 15, compare_body_limit=65536)
    cmds = engine_commands(plan, PORTS, OPTIONS, "/py", tuning)
    assert cmds.proxy[-3:] == ("--compare", "--compare-body-limit", "65536")
    assert cmds.replayer[3:5] == ("--input-tcp", "127.0.0.1:5002")
    hop = decision_events(plan)[2]
    assert (hop["framing"], hop["compare"]) == ("gor", "on")
    assert "type 2 messages" in str(hop["reason"])


def test_without_comparison_the_proxy_gets_no_compare_flag() -> None:
    plan = choose_engines(settings(), facts())
    assert not plan.compare
    cmds = engine_commands(plan, PORTS, OPTIONS, "/py", EngineTuning(15, 15, 65536))
    assert "--compare" not in cmds.proxy
    assert "compare" not in decision_events(plan)[2]


def test_comparison_on_auto_passes_over_an_installed_gor_and_em_proxy_and_says_so() -> None:
    plan = choose_engines(settings(compare=True), facts(gor=NEW_GOR, **BUNDLED))
    assert (plan.replayer, plan.proxy) == (ReplayerKind.BUILTIN, ProxyKind.BUILTIN)
    assert plan.gor_path is None
    assert "the buildpack's vendor/gor/gor /bp/vendor/gor/gor" in plan.replayer_reason
    assert plan.replayer_reason.endswith("is not used)")
    assert plan.proxy_reason == (
        "TRAFFIC_DUPLICATOR_COMPARE=on needs the built-in proxy "
        "(Gemfile.lock lists em-proxy; it is not used)"
    )


def test_comparison_keeps_the_reason_of_engines_named_builtin() -> None:
    plan = choose_engines(settings("builtin", "builtin", compare=True), facts(gor=OLD_GOR))
    assert plan.replayer_reason == "TRAFFIC_DUPLICATOR_REPLAYER=builtin"
    assert plan.proxy_reason == "TRAFFIC_DUPLICATOR_PROXY=builtin"


@pytest.mark.parametrize(
    ("replayer", "proxy", "extra", "fix"),
    [
        ("gor", "auto", {"gor": NEW_GOR}, "but TRAFFIC_DUPLICATOR_REPLAYER=gor; set "
         "TRAFFIC_DUPLICATOR_REPLAYER=builtin (or auto), or unset TRAFFIC_DUPLICATOR_COMPARE"),
        ("auto", "em-proxy", BUNDLED, "but TRAFFIC_DUPLICATOR_PROXY=em-proxy; set "
         "TRAFFIC_DUPLICATOR_PROXY=builtin (or auto), or unset TRAFFIC_DUPLICATOR_COMPARE"),
        ("auto", "auto", {"gor": NEW_GOR, "real_gor_flags": ("--middleware",)},
         "but the options need a real gor (--middleware); remove them, or unset "
         "TRAFFIC_DUPLICATOR_COMPARE"),
    ],
    ids=["replayer-gor", "proxy-em-proxy", "options-need-gor"],
)  # fmt: skip
def test_comparison_with_another_engine_chosen_is_one_line_that_says_why(
    replayer: str, proxy: str, extra: dict[str, object], fix: str
) -> None:
    with pytest.raises(EngineError) as caught:
        choose_engines(settings(replayer, proxy, compare=True), facts(**extra))
    assert str(caught.value) == f"{COMPARE_ON}, {fix}"
