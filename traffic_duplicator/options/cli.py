"""`python -m traffic_duplicator.options PATH [--gor-available]`: what bin/compile runs.

Prints the summary on stdout and exits 0, or prints the one-line mistake on stderr and
exits 2 (lib/options.sh turns that into the build's error block).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from traffic_duplicator.errors import UserError
from traffic_duplicator.options.model import load_options
from traffic_duplicator.options.summary import summary
from traffic_duplicator.options.validation import validate_options_file

USAGE = "usage: python -m traffic_duplicator.options PATH [--gor-available]"


def main(argv: Sequence[str] | None = None) -> int:
    """Validate one options file; the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    gor_available = "--gor-available" in args
    paths = [a for a in args if a != "--gor-available"]
    if len(paths) != 1 or paths[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        options = load_options(paths[0])
        validate_options_file(options, gor_available)
    except UserError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_status
    for line in summary(options):
        print(line)
    return 0
