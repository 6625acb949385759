"""The build and the dyno make the same engine decision, for every combination that matters.

Each case builds a fixture app with the real bin/compile, then starts the slug the way
Heroku does (`bash --login -c`, .profile.d sourced, `env -i`) with the same config vars and
the real wrapper, whose app (`true`) exits at once. Both print the decision: the build as
`at=engine` lines under "Choosing the engines" (or one error line), the dyno as its own
`at=engine` log lines (or `start-traffic-duplicator: error: ...`). They must be equal, with
the build's /app written where the test's dyno runs from BUILD_DIR.

The axes: em-proxy in Gemfile.lock or not (with the Ruby buildpack after this one, emulated
on the dyno by a bin/bundle and a .profile.d script, or said to be absent); BUNDLE_GEMFILE;
no gor, a legacy gor (0.14, lists --input-http), a modern gor, a gor that does not run; every
TRAFFIC_DUPLICATOR_PROXY / _REPLAYER value, TRAFFIC_DUPLICATOR_GOR naming a gor or nothing,
options that need a real gor, and TRAFFIC_DUPLICATOR_COMPARE (both built-in engines, or a
refusal). Each value of each axis appears, with the interactions the
decision has rules for; the whole cross product of the pure function is in
tests/wrapper/test_engines.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.buildpack.conftest import HEROKU_PATH, App, HookResult, Hooks, write_fake_gor
from tests.support import REPO_ROOT, free_port_block, running
from tests.wrapper.harness import parse_logfmt

# heroku-22 has a python3 on the stack: no runtime download, so each build takes a moment.
STACK = "heroku-22"
DYNO_TIMEOUT = 60.0
GOR_ONLY_LINE = "--output-http-track-response\n"
EM_PROXY_LOCK = (
    "GEM\n  specs:\n    em-proxy (0.1.9)\n      eventmachine\n\nDEPENDENCIES\n  em-proxy\n"
)
PLAIN_LOCK = "GEM\n  specs:\n    puma (6.4.2)\n\nDEPENDENCIES\n  puma\n"
RUBY_PROFILE = 'export PATH="$HOME/bin:$PATH"\n'

Outcome = tuple[str, Any]


@dataclass(frozen=True)
class Case:
    """One slug and its config vars. `lock`: em-proxy in Gemfile.lock; `ruby`: whether the
    app lists the Ruby buildpack (and the dyno gets `bundle`); `gor`: bin/gor's kind."""

    name: str
    lock: bool = False
    gor: str = "none"  # none | legacy | modern | broken
    config: dict[str, str] = field(default_factory=dict)
    ruby: bool = True
    gemfiles: dict[str, str] = field(default_factory=dict)  # extra Gemfile.lock files
    tools_gor: str | None = None  # kind of a gor at tools/gor (for TRAFFIC_DUPLICATOR_GOR)
    gor_only_options: bool = False
    expect: str = "ok"  # ok | refused


R, P, G = "TRAFFIC_DUPLICATOR_REPLAYER", "TRAFFIC_DUPLICATOR_PROXY", "TRAFFIC_DUPLICATOR_GOR"
C = "TRAFFIC_DUPLICATOR_COMPARE"
ALT = "gemfiles/alt.gemfile"

CASES = [
    # Every gor kind, with and without em-proxy, all on auto.
    Case("nothing"),
    Case("lock", lock=True),
    Case("legacy", gor="legacy"),
    Case("lock-legacy", lock=True, gor="legacy"),
    Case("modern", gor="modern"),
    Case("lock-modern-em-proxy-stays", lock=True, gor="modern"),
    Case("broken", gor="broken"),
    Case("lock-broken", lock=True, gor="broken"),
    # TRAFFIC_DUPLICATOR_REPLAYER
    Case("replayer-gor-none", config={R: "gor"}, expect="refused"),
    Case("replayer-gor-broken", gor="broken", config={R: "gor"}, expect="refused"),
    Case("replayer-gor-legacy", gor="legacy", config={R: "gor"}),
    Case("lock-replayer-gor-modern", lock=True, gor="modern", config={R: "gor"}),
    Case("replayer-builtin-modern", gor="modern", config={R: "builtin"}),
    Case("lock-replayer-builtin-legacy", lock=True, gor="legacy", config={R: "builtin"}),
    Case("replayer-typo", config={R: "gor2"}, expect="refused"),
    # TRAFFIC_DUPLICATOR_PROXY
    Case("proxy-builtin", config={P: "builtin"}),
    Case("lock-proxy-builtin", lock=True, config={P: "builtin"}),
    Case("lock-proxy-builtin-legacy", lock=True, gor="legacy", config={P: "builtin"}),
    Case("proxy-em-proxy-no-lock", config={P: "em-proxy"}, expect="refused"),
    Case("lock-proxy-em-proxy", lock=True, config={P: "em-proxy"}),
    Case("lock-proxy-em-proxy-modern", lock=True, gor="modern", config={P: "em-proxy"}),
    Case(
        "lock-both-explicit-modern",
        lock=True,
        gor="modern",
        config={R: "gor", P: "em-proxy"},
        expect="refused",
    ),
    Case("lock-both-explicit-legacy", lock=True, gor="legacy", config={R: "gor", P: "em-proxy"}),
    Case("lock-both-builtin", lock=True, gor="modern", config={R: "builtin", P: "builtin"}),
    Case("lock-no-ruby", lock=True, ruby=False),
    Case("lock-no-ruby-em-proxy", lock=True, ruby=False, config={P: "em-proxy"}, expect="refused"),
    # BUNDLE_GEMFILE: Bundler reads that file's .lock, not the app's Gemfile.lock.
    Case("bundle-gemfile-lists", gemfiles={ALT: EM_PROXY_LOCK}, config={"BUNDLE_GEMFILE": ALT}),
    Case(
        "bundle-gemfile-hides",
        lock=True,
        gemfiles={ALT: PLAIN_LOCK},
        config={"BUNDLE_GEMFILE": ALT},
    ),
    Case(
        "bundle-gemfile-absolute",
        gemfiles={ALT: EM_PROXY_LOCK},
        config={"BUNDLE_GEMFILE": "/app/" + ALT},
    ),
    # TRAFFIC_DUPLICATOR_GOR
    Case("gor-setting", tools_gor="modern", config={G: "tools/gor"}),
    Case("gor-setting-wins", gor="modern", tools_gor="legacy", config={G: "tools/gor"}),
    Case("gor-setting-absolute", tools_gor="legacy", config={G: "/app/tools/gor"}),
    Case("gor-setting-missing", config={G: "tools/missing"}, expect="refused"),
    Case("gor-setting-missing-builtin", config={G: "tools/missing", R: "builtin"}),
    # Options only a real gor implements.
    Case("needs-gor-none", gor_only_options=True, expect="refused"),
    Case("needs-gor-broken", gor="broken", gor_only_options=True, expect="refused"),
    Case("lock-needs-gor-modern", lock=True, gor="modern", gor_only_options=True),
    Case(
        "lock-needs-gor-em-proxy",
        lock=True,
        gor="modern",
        gor_only_options=True,
        config={P: "em-proxy"},
        expect="refused",
    ),
    Case(
        "needs-gor-replayer-builtin",
        gor="modern",
        gor_only_options=True,
        config={R: "builtin"},
        expect="refused",
    ),
    # Comparison: an auto side gives way to the built-in engines; a named gor is refused.
    Case("lock-compare-modern", lock=True, gor="modern", config={C: "on"}),
    Case("compare-replayer-gor", gor="modern", config={C: "on", R: "gor"}, expect="refused"),
]


def _place_gor(path: Path, kind: str) -> None:
    if kind == "legacy":
        write_fake_gor(path, "0.14.1")
    elif kind == "modern":
        write_fake_gor(path, "1.3.3")
    elif kind == "broken":
        # A macOS build committed by mistake: not a program Linux can run.
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xcf\xfa\xed\xfe" + b"\x00" * 64)
        path.chmod(0o755)


def _prepare(hooks: Hooks, case: Case) -> App:
    app = hooks.app("dyno")
    build = app.build_dir
    # The app exits at once: the wrapper logs its decision, starts, and stops with it.
    (build / "Procfile").write_text("web: start-traffic-duplicator true\n")
    if case.gor_only_options:
        options = build / "config" / "gor.options"
        options.write_text(options.read_text() + GOR_ONLY_LINE)
    if case.lock:
        (build / "Gemfile.lock").write_text(EM_PROXY_LOCK)
    for name, text in case.gemfiles.items():
        (build / (name + ".lock")).parent.mkdir(parents=True, exist_ok=True)
        (build / (name + ".lock")).write_text(text)
    if case.lock or case.gemfiles:
        ruby = "heroku/ruby\n" if case.ruby else "heroku/nodejs\n"
        (build / ".buildpacks").write_text("https://github.com/example/traffic-duplicator\n" + ruby)
    _place_gor(build / "bin" / "gor", case.gor)
    if case.tools_gor:
        _place_gor(build / "tools" / "gor", case.tools_gor)
    for name, value in case.config.items():
        app.set_config(name, value)
    return app


def _emulate_ruby_buildpack(app: App) -> None:
    """What heroku/ruby leaves in the slug after us: bundle, and a PATH that finds it."""
    bin_dir = app.build_dir / "bin"
    bin_dir.mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / "tests" / "fixtures" / "bin" / "bundle", bin_dir / "bundle")
    (app.build_dir / ".profile.d" / "ruby.sh").write_text(RUBY_PROFILE)


def _normalize(value: object, build_dir: Path) -> object:
    if isinstance(value, str):
        return value.replace(str(build_dir), "/app")
    if isinstance(value, list):
        return [_normalize(item, build_dir) for item in value]
    if isinstance(value, dict):
        return {key: _normalize(item, build_dir) for key, item in value.items()}
    return value


def build_outcome(result: HookResult) -> Outcome:
    """The decision the build printed: its at=engine lines, or the reason it refused."""
    if result.returncode == 0:
        lines = [line.strip() for line in result.stdout.splitlines()]
        return "ok", [parse_logfmt(line) for line in lines if line.startswith("at=engine ")]
    assert result.returncode == 1, result.output
    refused = re.search(r" !     Error: the dyno would refuse to start: (.*)\n", result.stderr)
    if refused is None:  # the options step, which names the file and line
        refused = re.search(r" !     Found: (.*)\n", result.stderr)
    assert refused is not None, result.output
    return "refused", refused.group(1)


def start_dyno(app: App, config: dict[str, str]) -> tuple[int, str]:
    """Start the slug as Heroku would, with these config vars; its status and output."""
    dyno_config = {
        name: value.replace("/app/", f"{app.build_dir}/") for name, value in config.items()
    }
    argv = [
        "env",
        "-i",
        f"PATH={HEROKU_PATH}",
        f"HOME={app.build_dir}",
        f"PORT={free_port_block(3)}",
        *(f"{name}={value}" for name, value in dyno_config.items()),
        "bash",
        "--login",
        "-c",
        'for f in "$HOME"/.profile.d/*.sh; do . "$f"; done; start-traffic-duplicator true',
    ]
    log = app.home / "dyno.log"
    with (
        log.open("wb") as output,
        running(argv, env=None, cwd=app.build_dir, stdout=output, stderr=subprocess.STDOUT) as dyno,
    ):
        status = dyno.wait(DYNO_TIMEOUT)
    return status, log.read_text()


def dyno_outcome(app: App, config: dict[str, str]) -> Outcome:
    """The decision the real wrapper logged when the slug started as on Heroku."""
    status, text = start_dyno(app, config)
    refused = re.search(r"^start-traffic-duplicator: error: (.*)$", text, re.MULTILINE)
    if refused is not None:
        assert status == 2, text
        return "refused", _normalize(refused.group(1), app.build_dir)
    assert status == 0, text
    events = [
        parse_logfmt(line.removeprefix("traffic_duplicator "))
        for line in text.splitlines()
        if line.startswith("traffic_duplicator at=engine ")
    ]
    assert "running the engines the build checked" not in text, text  # no fallback needed
    return "ok", _normalize(events, app.build_dir)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_build_and_dyno_print_the_same_engine_decision(hooks: Hooks, case: Case) -> None:
    app = _prepare(hooks, case)

    built = hooks.compile(app, STACK)
    build = build_outcome(built)
    if case.ruby and (case.lock or case.gemfiles):
        _emulate_ruby_buildpack(app)
    dyno = dyno_outcome(app, case.config)

    assert build == dyno, built.output
    assert build[0] == case.expect, built.output
    if build[0] == "ok":
        assert [event["process"] for event in build[1]] == ["replayer", "proxy", "hop"]


def test_an_engine_var_changed_after_the_build_cannot_keep_the_dyno_down(hooks: Hooks) -> None:
    app = _prepare(hooks, Case("nothing"))
    built = hooks.compile(app, STACK)
    assert built.returncode == 0, built.output

    # `heroku config:set TRAFFIC_DUPLICATOR_REPLAYER=gor` restarts the dyno without a build.
    status, text = start_dyno(app, {"TRAFFIC_DUPLICATOR_REPLAYER": "gor"})

    assert status == 0, text
    assert (
        'traffic_duplicator at=error message="TRAFFIC_DUPLICATOR_REPLAYER=gor but no gor binary '
        "found (looked at "
    ) in text
    assert (
        'action="running the engines the build checked (TRAFFIC_DUPLICATOR_REPLAYER=(unset)); '
        'fix or unset TRAFFIC_DUPLICATOR_REPLAYER, or build again"'
    ) in text
    assert "traffic_duplicator at=engine process=replayer engine=builtin " in text

    # Without the build's record (a local run) the same mistake stops the boot, as before.
    (app.build_dir / ".traffic-duplicator" / "engines.checked").unlink()
    status, text = start_dyno(app, {"TRAFFIC_DUPLICATOR_REPLAYER": "gor"})
    assert status == 2, text
    assert "start-traffic-duplicator: error: TRAFFIC_DUPLICATOR_REPLAYER=gor but no gor" in text
