"""Command line: `python -m traffic_duplicator.replay --input-http [HOST]:PORT [options...]`.

`-h`/`--help` and `--version` as the first word print and exit 0, starting nothing.

The words go through the same flag table as config/gor.options. Shadow comparison is set by
the TRAFFIC_DUPLICATOR_COMPARE_* variables (compare/settings.py), as the wrapper passes them.
A user's mistake (bad flag or value, port in use, unwritable output file, a comparison
variable) is one line on stderr and exit 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from traffic_duplicator import loops
from traffic_duplicator.compare import read_compare_settings
from traffic_duplicator.errors import UserError
from traffic_duplicator.logs import EventLog
from traffic_duplicator.options import parse_argv
from traffic_duplicator.replay.config import build_config
from traffic_duplicator.replay.engine import Engine
from traffic_duplicator.replay.usage import asks_for, usage, version

SOURCE = "replayer"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    wanted = asks_for(args)
    if wanted is not None:
        sys.stdout.write(usage() if wanted == "help" else version() + "\n")
        return 0
    log = EventLog(None)
    try:
        options = parse_argv(args, source=SOURCE)
        config = build_config(options)
        compare = read_compare_settings(os.environ)
    except UserError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_status
    for flag in options.deprecated():
        log.event(at="deprecated", flag=flag.spelling, use=f"--{flag.name}")
    try:
        return loops.run(Engine(config, log, compare).run())
    except UserError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 0
