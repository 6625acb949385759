"""`start-traffic-duplicator COMMAND [ARGS...]`: run the app with its traffic mirrored.

This is the only place that turns a user's mistake into one line and an exit status.
The kill switch is read first and needs almost nothing imported: with duplication off the
wrapper execs the app at once. Otherwise `launch` checks everything before anything starts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import traffic_duplicator
from traffic_duplicator.errors import UserError
from traffic_duplicator.logs import EventLog
from traffic_duplicator.redact import mask_argv
from traffic_duplicator.wrapper.command import exec_app
from traffic_duplicator.wrapper.ports import rewrite_command
from traffic_duplicator.wrapper.settings import ENABLED, read_enabled

PROG = "start-traffic-duplicator"
USAGE = f"usage: {PROG} COMMAND [ARGS...]   e.g. {PROG} bundle exec rails s -p $PORT"
LOG_SOURCE = "traffic_duplicator"
INTERRUPTED_STATUS = 130


class UsageError(UserError):
    """No command, or a flag we do not have."""


def _error_line(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()


def parse_args(args: Sequence[str]) -> list[str] | None:
    """The app's command, or None after printing help or the version."""
    words = list(args)
    if words and words[0] in ("-h", "--help"):
        print(USAGE)
        print("Runs COMMAND on $PORT+1, a tee proxy on $PORT and a replayer on $PORT+2;")
        print("settings are TRAFFIC_DUPLICATOR_* environment variables (see the README).")
        return None
    if words and words[0] == "--version":
        print(f"{PROG} {traffic_duplicator.__version__}")
        return None
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise UsageError(f"no command given; {USAGE}")
    if words[0].startswith("-"):
        raise UsageError(f"unknown option {words[0]}; {USAGE}")
    return words


def _exec_disabled(command: list[str], env: Mapping[str, str], log: EventLog) -> NoReturn:
    """The kill switch: become the app on the original $PORT, with nothing else running."""
    raw_port = env.get("PORT", "").strip()
    if raw_port.isdigit():
        # Still expand an unexpanded $PORT: without a shell nobody else will.
        command = list(rewrite_command(command, int(raw_port), int(raw_port)).argv)
    log.event(at="disabled", reason=f"{ENABLED}={env.get(ENABLED, '')}", command=mask_argv(command))
    sys.stdout.flush()
    sys.stderr.flush()
    exec_app(command, env)


def run(args: Sequence[str], env: Mapping[str, str], cwd: Path, log: EventLog) -> int:
    command = parse_args(args)
    if command is None:
        return 0
    if not read_enabled(env):
        _exec_disabled(command, env, log)
    # Only now the engines, the options parser and the supervisor.
    from traffic_duplicator.wrapper.launch import launch

    return launch(command, env, cwd, log)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script; returns the exit status (the app's, when it ran)."""
    args = sys.argv[1:] if argv is None else argv
    # Our events go to stderr, like the engines'; the app's stdout stays its own.
    log = EventLog(LOG_SOURCE, sys.stderr)
    try:
        return run(args, os.environ, Path.cwd(), log)
    except UserError as exc:
        _error_line(str(exc))
        return exc.exit_status
    except KeyboardInterrupt:
        # Ctrl-C before supervision began: nothing was started yet.
        return INTERRUPTED_STATUS
