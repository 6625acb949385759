"""What the build checked, kept in the slug, and how the dyno uses it when config vars change.

The build writes `.traffic-duplicator/engines.checked` (`--explain --record`): the engine
config vars it decided with and a summary of the decision. Heroku restarts dynos on
`heroku config:set` without building again, so an engine var changed after the build is
checked only at boot. When the new value makes the engines impossible (for example
TRAFFIC_DUPLICATOR_REPLAYER=gor with no gor in the slug), the wrapper logs the error and
runs the engines the build checked, rather than keeping production down for a mirror
setting. Without a record (a local run, a pip install) such an error stops the boot.

The file is `key=value` lines, so bin/compile can read `uses_gor` and `summary` with sed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from traffic_duplicator.compare.settings import COMPARE
from traffic_duplicator.errors import UserError
from traffic_duplicator.logs import EventLog
from traffic_duplicator.options import GorOptions, validate_options_file
from traffic_duplicator.wrapper.discovery import BUNDLE_GEMFILE, buildpack_home, discover_engines
from traffic_duplicator.wrapper.engines import EnginePlan, choose_engines
from traffic_duplicator.wrapper.settings import GOR, PROXY, REPLAYER, read_settings

RECORD_NAME = "engines.checked"
# The config vars the engine decision reads; a change to any of them after the build is
# what the record lets the dyno notice.
ENGINE_VARS = (REPLAYER, PROXY, GOR, BUNDLE_GEMFILE, COMPARE)
_CONFIG_PREFIX = "config."


@dataclass(frozen=True)
class BuildRecord:
    uses_gor: bool
    summary: str
    config: dict[str, str] = field(default_factory=dict)  # "" for a var that was unset


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def _unescape(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            out.append({"n": "\n", "r": "\r"}.get(nxt, nxt))
        else:
            out.append(char)
    return "".join(out)


def render_record(record: BuildRecord) -> str:
    lines = [
        "# Written by the traffic-duplicator buildpack: the engine decision this build checked.",
        f"uses_gor={'yes' if record.uses_gor else 'no'}",
        f"summary={_escape(record.summary)}",
    ]
    for name in ENGINE_VARS:
        lines.append(f"{_CONFIG_PREFIX}{name}={_escape(record.config.get(name, ''))}")
    return "\n".join(lines) + "\n"


def parse_record(text: str) -> BuildRecord:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[key] = _unescape(value)
    config = {
        name: values.get(_CONFIG_PREFIX + name, "")
        for name in ENGINE_VARS
        if _CONFIG_PREFIX + name in values
    }
    return BuildRecord(values.get("uses_gor") == "yes", values.get("summary", ""), config)


def read_record(home: Path) -> BuildRecord | None:
    """The record in TRAFFIC_DUPLICATOR_HOME, or None when there is none (or it is unreadable)."""
    try:
        return parse_record((home / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def changed_since_build(env: Mapping[str, str], record: BuildRecord) -> list[str]:
    """The engine config vars whose value differs from the one the build checked."""
    return [
        name
        for name in ENGINE_VARS
        if name in record.config and env.get(name, "").strip() != record.config[name]
    ]


def env_as_built(env: Mapping[str, str], record: BuildRecord) -> dict[str, str]:
    """The environment with the engine config vars set back to what the build checked."""
    result = {name: value for name, value in env.items() if name not in record.config}
    result.update({name: value for name, value in record.config.items() if value})
    return result


def plan_with_fallback(
    env: Mapping[str, str],
    decide: Callable[[Mapping[str, str]], EnginePlan],
    record: BuildRecord | None,
    log: EventLog,
) -> EnginePlan:
    """`decide(env)`; if that fails only because engine vars changed since the build, the
    plan for the vars the build checked, with one `at=error` line saying what to fix."""
    try:
        return decide(env)
    except UserError as error:
        changed = changed_since_build(env, record) if record is not None else []
        if record is None or not changed:
            raise
        try:
            plan = decide(env_as_built(env, record))
        except UserError:
            raise error from None
        as_built = ", ".join(f"{name}={record.config[name] or '(unset)'}" for name in changed)
        log.event(
            at="error",
            message=str(error),
            action=f"running the engines the build checked ({as_built}); "
            f"fix or unset {', '.join(changed)}, or build again",
        )
        return plan


def engine_plan_at_boot(
    env: Mapping[str, str], cwd: Path, package_dir: Path, options: GorOptions, log: EventLog
) -> EnginePlan:
    """The wrapper's engine decision: the facts on disk, the settings, and the options checked
    against the replayer chosen; with the build's record as the fallback described above."""
    real_gor_flags = tuple(flag.spelling for flag in options.needs_real_gor())

    def decide(current: Mapping[str, str]) -> EnginePlan:
        engines = read_settings(current).engines
        facts = discover_engines(engines, current, cwd, package_dir, real_gor_flags)
        plan = choose_engines(engines, facts)
        validate_options_file(options, gor_available=plan.uses_gor)
        return plan

    home = cwd / buildpack_home(read_settings(env).engines, package_dir)
    return plan_with_fallback(env, decide, read_record(home), log)
