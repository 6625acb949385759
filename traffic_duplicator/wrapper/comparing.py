"""What the wrapper checks and hands on when shadow comparison is on (issue 10).

The engine decision (`engines.choose_engines`) says whether comparison runs: only with both
built-in engines. When it does, the TRAFFIC_DUPLICATOR_COMPARE_* variables are read here at
boot, and by the build, so that a bad interval or a baseline that names no output is one
line before anything starts, instead of a replayer that exits on every restart. The proxy
gets `--compare` on its command line (`engines.engine_commands`); the replayer inherits the
variables, with TRAFFIC_DUPLICATOR_COMPARE set to what the decision said, so the two engines
never disagree (after a fallback to the build's decision, say).
"""

from __future__ import annotations

from collections.abc import Mapping

from traffic_duplicator.compare.settings import (
    COMPARE,
    CompareSettings,
    read_compare_settings,
    resolve_baseline,
)
from traffic_duplicator.options import GorOptions, flags
from traffic_duplicator.wrapper.engines import EnginePlan


def output_urls(options: GorOptions) -> tuple[str, ...]:
    """The --output-http URLs, normalised as the replayer names its outputs."""
    return tuple(target.url for target in options.values(flags.OUTPUT_HTTP))


def compare_settings(
    plan: EnginePlan, env: Mapping[str, str], options: GorOptions
) -> CompareSettings | None:
    """None when the plan does not compare; else the settings, the baseline checked against
    the options' outputs. Raises `CompareSettingsError` (a UserError: one line)."""
    if not plan.compare:
        return None
    settings = read_compare_settings({**env, COMPARE: "on"})
    resolve_baseline(settings.baseline, output_urls(options))
    return settings


def with_compare_switch(env: Mapping[str, str], plan: EnginePlan) -> dict[str, str]:
    """The engines' environment with TRAFFIC_DUPLICATOR_COMPARE saying what the plan does."""
    return {**env, COMPARE: "on" if plan.compare else "off"}
