"""From a command and the environment to a running supervisor, checking everything first.

The order: settings, $PORT, the options file, the engines, the options against the chosen
replayer, the app's program, free ports. Only then is anything started, and every choice
is logged with its reason.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import traffic_duplicator
from traffic_duplicator.logs import EventLog
from traffic_duplicator.options import GorOptions, deprecation_notices, load_options
from traffic_duplicator.wrapper.budget import ShutdownBudget
from traffic_duplicator.wrapper.buildrecord import engine_plan_at_boot
from traffic_duplicator.wrapper.command import check_program
from traffic_duplicator.wrapper.comparing import compare_settings, with_compare_switch
from traffic_duplicator.wrapper.engines import (
    EngineCommands,
    EnginePlan,
    EngineTuning,
    decision_events,
    engine_commands,
)
from traffic_duplicator.wrapper.ports import (
    PortPlan,
    RewrittenCommand,
    check_ports_free,
    plan_ports,
    rewrite_command,
)
from traffic_duplicator.wrapper.process import ChildSpec
from traffic_duplicator.wrapper.proxysettings import builtin_proxy_settings
from traffic_duplicator.wrapper.restarts import proxy_policy, replayer_policy
from traffic_duplicator.wrapper.runner import run
from traffic_duplicator.wrapper.settings import Settings, read_settings
from traffic_duplicator.wrapper.supervisor import SupervisorPlan

PACKAGE_DIR = Path(traffic_duplicator.__file__).resolve().parent


def engine_env(env: Mapping[str, str]) -> dict[str, str]:
    """The engines' environment: this very package importable, output unbuffered."""
    result = dict(env)
    existing = result.get("PYTHONPATH", "")
    result["PYTHONPATH"] = str(PACKAGE_DIR.parent) + (os.pathsep + existing if existing else "")
    result["PYTHONUNBUFFERED"] = "1"
    return result


def _log_plan(
    log: EventLog,
    *,
    settings: Settings,
    ports: PortPlan,
    options: GorOptions,
    plan: EnginePlan,
) -> None:
    log.event(
        at="config", port=ports.public, app_port=ports.app, replayer_port=ports.replayer,
        options=str(settings.options_path), outputs=len(options.outputs()),
        shutdown_timeout=f"{settings.supervision.shutdown_timeout:g}s",
    )  # fmt: skip
    for fields in decision_events(plan):
        log.event(**fields)
    for notice in deprecation_notices(options):
        log.event(at="warning", message=notice)


def _log_rewrites(log: EventLog, rewritten: RewrittenCommand) -> None:
    for rewrite in rewritten.rewrites:
        log.event(at="rewrite", position=rewrite.position, old=rewrite.old, new=rewrite.new)
    for kept in rewritten.kept:
        log.event(at="kept", position=kept.position, word=kept.word, reason=kept.reason)


def _replayer_summary(commands: EngineCommands, options: GorOptions, settings: Settings) -> str:
    """The replayer's command without the options themselves, which may hold credentials."""
    head = commands.replayer[: len(commands.replayer) - len(options.argv)]
    return f"{shlex.join(head)} <options from {settings.options_path}>"


def launch(command: Sequence[str], env: Mapping[str, str], cwd: Path, log: EventLog) -> int:
    """Check everything, then run the app, the replayer and the proxy; the exit status."""
    settings = read_settings(env)
    ports = plan_ports(env)
    options = load_options(settings.options_path)
    plan = engine_plan_at_boot(env, cwd, PACKAGE_DIR, options, log)
    compare = compare_settings(plan, env, options)
    builtin_proxy_settings(plan, env)
    check_program(command[0], env)
    check_ports_free(ports)

    rewritten = rewrite_command(command, ports.public, ports.app)
    timeout = settings.supervision.shutdown_timeout
    # The engines' own timeouts: the most their stage of the shutdown can get.
    budget = ShutdownBudget(timeout)
    commands = engine_commands(
        plan,
        ports,
        options.argv,
        sys.executable,
        EngineTuning(
            drain_timeout=budget.drain_timeout,
            flush_timeout=budget.flush_timeout,
            compare_body_limit=compare.body_limit if compare is not None else None,
        ),
    )
    _log_plan(log, settings=settings, ports=ports, options=options, plan=plan)
    _log_rewrites(log, rewritten)
    engines = engine_env(with_compare_switch(env, plan))
    app_env = {**env, "PORT": str(ports.app)}
    supervisor_plan = SupervisorPlan(
        app=ChildSpec("app", rewritten.argv, app_env, ports.app, prefix_output=False),
        replayer=ChildSpec(
            "replayer", commands.replayer, engines, ports.replayer, prefix_output=True
        ),
        proxy=ChildSpec("proxy", commands.proxy, engines, ports.public, prefix_output=True),
        public_port=ports.public,
        shutdown_timeout=timeout,
        replayer_policy=replayer_policy(settings.supervision.restart_backoff_base),
        proxy_policy=proxy_policy(),
        replayer_summary=_replayer_summary(commands, options, settings),
    )
    return run(supervisor_plan, log)
