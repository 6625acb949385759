"""The build's view of the engine decision, asked of the code the dyno runs.

`python -m traffic_duplicator.wrapper.engines --explain BUILD_DIR ENV_DIR [--record FILE]
[--app-dir DIR] [--home DIR]`

bin/compile runs it once gor (if any) is in the slug. It reads the config vars from ENV_DIR
(Heroku writes one file per var), gathers the facts from BUILD_DIR with the wrapper's own
discovery (`gor --help` is run here, once), names every path as the dyno will see it (under
/app), asks `choose_engines`, and prints the `at=engine` lines the dyno will log, in build
output style. Where the dyno would refuse to start it prints one line and exits 2, so the
push fails instead. `--record` keeps the decision in the slug (`wrapper.buildrecord`).

One fact only the dyno knows is predicted, and the prediction is said: whether `bundle`
will be on its PATH, which depends on the Ruby buildpack running after this one (read from
.buildpacks, app.json or BUILDPACK_URL; when none says, a Ruby app is assumed to have it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from traffic_duplicator.errors import UserError
from traffic_duplicator.logs import logfmt
from traffic_duplicator.options import GorOptions, load_options
from traffic_duplicator.wrapper.buildrecord import (
    ENGINE_VARS,
    BuildRecord,
    render_record,
)
from traffic_duplicator.wrapper.comparing import compare_settings
from traffic_duplicator.wrapper.discovery import (
    AppDir,
    OnPath,
    Site,
    gather_facts,
    lockfile_listing_em_proxy,
)
from traffic_duplicator.wrapper.engines import (
    EngineFacts,
    EnginePlan,
    ReplayerKind,
    choose_engines,
    decision_events,
)
from traffic_duplicator.wrapper.proxysettings import builtin_proxy_settings
from traffic_duplicator.wrapper.settings import HOME, ProxyMode, Settings, read_settings

PROG = "python -m traffic_duplicator.wrapper.engines"
# Where Heroku runs the slug, and where the buildpack installs itself in it.
APP_HOME = Path("/app")
INSTALL_DIRNAME = ".traffic-duplicator"
INDENT = " " * 7
DOCS_URL = "https://github.com/traffic-duplicator/traffic-duplicator#readme"
BUILTIN_SUMMARY = "the built-in replayer (python -m traffic_duplicator.replay)"
# `id = "heroku/ruby"` or `uri = "…"` lines of a project descriptor's build group.
_GROUP_ENTRY = re.compile(r"""^\s*(?:id|uri)\s*=\s*["']([^"']+)["']""", re.MULTILINE)
_RUBY_BUILDPACK = re.compile(
    r"(^|[/:\s])heroku/ruby([#@\s]|$)|heroku-buildpack-ruby", re.IGNORECASE | re.MULTILINE
)


class BuildOutput:
    """Heroku's build-output vocabulary: `-----> ` steps and 7-space details on stdout,
    warnings and errors on stderr, each line behind ` !     `."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err

    def step(self, text: str) -> None:
        self.out.write(f"-----> {text}\n")

    def info(self, text: str) -> None:
        self.out.write(f"{INDENT}{text}\n")

    def warning(self, text: str) -> None:
        lines = [f" !     {line}" if line else " !" for line in text.strip("\n").splitlines()]
        self.err.write("\n" + "\n".join(lines) + "\n\n")

    def error_line(self, text: str) -> None:
        self.err.write(f"\n !     {text}\n\n")


def read_env_dir(env_dir: Path | None) -> dict[str, str]:
    """The config vars Heroku wrote to ENV_DIR, one file per var (name -> value)."""
    config: dict[str, str] = {}
    if env_dir is None or not env_dir.is_dir():
        return config
    for path in sorted(env_dir.iterdir()):
        if path.is_file():
            config[path.name] = path.read_text(encoding="utf-8", errors="replace")
    return config


def dyno_env(
    config: Mapping[str, str], app_dir: Path = APP_HOME, home: Path | None = None
) -> dict[str, str]:
    """The environment the wrapper will read: config vars over .profile.d's defaults."""
    env = {"HOME": str(app_dir), HOME: str(home or app_dir / INSTALL_DIRNAME)}
    env.update(config)
    return env


def buildpack_list(
    build_dir: Path, config: Mapping[str, str], cnb: bool = False
) -> tuple[str, str]:
    """Where the app lists its buildpacks (.buildpacks, app.json, BUILDPACK_URL or none; for
    a Cloud Native Buildpacks build, project.toml or none), and the entries found there,
    one per line."""
    if cnb:
        return _project_toml_buildpacks(build_dir / "project.toml")
    dot_buildpacks = build_dir / ".buildpacks"
    if dot_buildpacks.is_file():
        lines = dot_buildpacks.read_text(encoding="utf-8", errors="replace").splitlines()
        return ".buildpacks", "\n".join(
            line for line in lines if line.strip() and not line.strip().startswith("#")
        )
    urls = _app_json_buildpacks(build_dir / "app.json")
    if urls:
        return "app.json", "\n".join(urls)
    if config.get("BUILDPACK_URL", "").strip():
        return "BUILDPACK_URL", config["BUILDPACK_URL"].strip()
    return "none", ""


def _project_toml_buildpacks(path: Path) -> tuple[str, str]:
    """The `id` and `uri` values of project.toml's build group (the project descriptor's
    `[[io.buildpacks.group]]`). Read as lines, not TOML: the build's Python may be 3.10,
    which has no tomllib, and only the buildpacks' names matter here."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "none", ""
    values = _GROUP_ENTRY.findall(text)
    return ("project.toml", "\n".join(values)) if values else ("none", "")


def _app_json_buildpacks(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data.get("buildpacks") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [
        entry["url"]
        for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("url"), str)
    ]


def ruby_verdict(source: str, entries: str) -> str:
    """yes / no / unknown: will the Ruby buildpack (and so `bundle`) be on the dyno?
    BUILDPACK_URL names one buildpack (or a multi-buildpack runner): it can say yes, never no."""
    if source == "none":
        return "unknown"
    if _RUBY_BUILDPACK.search(entries):
        return "yes"
    return "unknown" if source == "BUILDPACK_URL" else "no"


def predicted_on_path(build_dir: Path, ruby: str) -> OnPath:
    """What the build expects on the dyno's PATH: the app's own bin/ (buildpacks put it on
    PATH), and `bundle` wherever the Ruby buildpack may run."""

    def on_path(name: str) -> bool:
        candidate = build_dir / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return True
        return name == "bundle" and ruby != "no"

    return on_path


def _report_ruby(output: BuildOutput, lockfile: str, source: str, verdict: str) -> None:
    output.step(f"Checking for Ruby (em-proxy is in {lockfile})")
    if verdict == "yes":
        output.info(f"{source} lists the Ruby buildpack: em-proxy will have Ruby on the dyno")
    elif verdict == "no":
        output.warning(f"""
Warning: em-proxy is in {lockfile}, but {source} lists no Ruby buildpack.

em-proxy is a Ruby program: without Ruby on the dyno it cannot run, so the dyno
uses the built-in proxy.

To fix, add the Ruby buildpack after this one in {source}, e.g. the line:
  heroku/ruby
(or remove em-proxy from the Gemfile to use the built-in proxy), then push again.

Buildpack order: https://devcenter.heroku.com/articles/using-multiple-buildpacks-for-an-app
""")
    else:
        output.warning(f"""
Warning: em-proxy is in {lockfile}; it needs Ruby on the dyno.

A buildpack cannot see the app's buildpack list, so this build cannot tell
whether the Ruby buildpack runs after this one; it assumes it does.

To make sure:
1. Run: heroku buildpacks
2. If heroku/ruby is not listed after this buildpack, run:
     heroku buildpacks:add heroku/ruby
3. Or remove em-proxy from the Gemfile to use the built-in proxy.

Buildpack order: https://devcenter.heroku.com/articles/using-multiple-buildpacks-for-an-app
""")


def _slug_options(settings: Settings, app: AppDir) -> GorOptions | None:
    """The options file; None when it is not in the slug or does not parse (the options
    step reports that)."""
    path = app.locate(settings.options_path)
    if not path.is_relative_to(app.actual):
        return None  # outside the app: the build cannot see it
    try:
        return load_options(path)
    except UserError:
        return None


def _summary(plan: EnginePlan, facts: EngineFacts) -> str:
    if not plan.uses_gor or facts.gor is None:
        return BUILTIN_SUMMARY
    gor = facts.gor
    hop = (
        "fed plain HTTP on --input-http"
        if plan.replayer is ReplayerKind.GOR_INPUT_HTTP
        else "fed GoReplay framing on --input-tcp"
    )
    return f"gor {gor.version or '(version unknown)'} ({gor.path}), {hop}"


def _warn_unrunnable_gor(output: BuildOutput, facts: EngineFacts) -> None:
    gor = facts.gor
    if gor is None or gor.help_text is not None:
        return
    output.warning(f"""
Warning: {gor.found_at} ({gor.path}) cannot run here: {gor.problem}.

A gor that does not run here will not run on the dyno either, so the dyno uses the
built-in replayer (the at=engine lines above say so).

To fix:
1. Replace it with a Linux {os.uname().machine} build of gor, or set
   TRAFFIC_DUPLICATOR_GOR_VERSION to have the build download one
   (see vendor/gor/README.md in the buildpack).
2. Or delete it to use the built-in replayer:
     git rm bin/gor && git commit -m "Use the built-in replayer"
3. Push again.

{DOCS_URL}
""")


def explain(
    build_dir: Path,
    env_dir: Path | None,
    output: BuildOutput,
    *,
    app_dir: Path = APP_HOME,
    home: Path | None = None,
) -> BuildRecord | None:
    """Print the decision the dyno will make; None (after one error line) where it would
    refuse to start. `app_dir` is where the app will run (/app on Heroku, /workspace for a
    Cloud Native Buildpack), `home` TRAFFIC_DUPLICATOR_HOME's default there (a CNB's layer)."""
    config = read_env_dir(env_dir)
    app = AppDir(build_dir, app_dir)
    env = dyno_env(config, app_dir, home)
    try:
        settings = read_settings(env)
    except UserError as exc:
        output.error_line(f"Error: the dyno would refuse to start: {exc}")
        return None
    engines = settings.engines
    ruby = "unknown"
    lockfile = lockfile_listing_em_proxy(env, app)
    if lockfile and engines.proxy is not ProxyMode.BUILTIN:
        # The CNB lifecycle sets CNB_PLATFORM_DIR; Heroku's classic build does not.
        source, entries = buildpack_list(build_dir, config, "CNB_PLATFORM_DIR" in os.environ)
        ruby = ruby_verdict(source, entries)
        _report_ruby(output, lockfile, source, ruby)
    buildpack_home = app.locate(engines.home or app_dir / INSTALL_DIRNAME)
    site = Site(app, buildpack_home, predicted_on_path(build_dir, ruby))
    options = _slug_options(settings, app)
    real_gor_flags = tuple(f.spelling for f in options.needs_real_gor()) if options else ()
    facts = gather_facts(engines, env, site, real_gor_flags)
    output.step("Choosing the engines (the dyno logs the same at=engine lines)")
    try:
        plan = choose_engines(engines, facts)
        if options is not None:
            compare_settings(plan, env, options)
        builtin_proxy_settings(plan, env)
    except UserError as exc:
        output.error_line(f"Error: the dyno would refuse to start: {exc}")
        return None
    for fields in decision_events(plan):
        output.info(logfmt(**fields))
    _warn_unrunnable_gor(output, facts)
    checked = {name: config.get(name, "").strip() for name in ENGINE_VARS}
    return BuildRecord(plan.uses_gor, _summary(plan, facts), checked)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Print the engine decision the dyno will make for a slug being built.",
    )
    parser.add_argument("--explain", nargs=2, metavar=("BUILD_DIR", "ENV_DIR"), required=True)
    parser.add_argument("--record", metavar="FILE", help="keep the decision in FILE")
    parser.add_argument(
        "--app-dir",
        type=Path,
        default=APP_HOME,
        help="where the app will run (default /app; /workspace for a Cloud Native Buildpack)",
    )
    parser.add_argument(
        "--home",
        type=Path,
        help="TRAFFIC_DUPLICATOR_HOME at run time (default APP_DIR/.traffic-duplicator)",
    )
    args = parser.parse_args(argv)
    build_dir = Path(args.explain[0]).resolve()
    env_dir = Path(args.explain[1]) if args.explain[1] else None
    output = BuildOutput(sys.stdout, sys.stderr)
    record = explain(build_dir, env_dir, output, app_dir=args.app_dir, home=args.home)
    if record is None:
        return UserError.exit_status
    if args.record:
        Path(args.record).parent.mkdir(parents=True, exist_ok=True)
        Path(args.record).write_text(render_record(record), encoding="utf-8")
    return 0
