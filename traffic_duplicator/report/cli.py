"""`traffic-duplicator-report [FILE…]`: the comparison results in the logs, as a table.

Reads `at=compare` lines (compare/lines.py) from the files given, or standard input, e.g.
`heroku logs -n 1500 -a myapp | traffic-duplicator-report`. Exit status: 0, or 1 with
`--fail-on-flagged` when a row is flagged, or 2 for a mistake (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import NoReturn, TextIO

from traffic_duplicator.compare.noise import (
    ABSOLUTE_THRESHOLD,
    LATENCY_ABSOLUTE_THRESHOLD,
    RELATIVE_THRESHOLD,
    Thresholds,
)
from traffic_duplicator.errors import UserError
from traffic_duplicator.report import merge, reader, render

PROG = "traffic-duplicator-report"
FLAGGED_EXIT_STATUS = 1


class ReportError(UserError):
    """A bad flag, an unreadable file, or input without comparison lines."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ReportError(f"{message} (see --help)")


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage, e.g. 20") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage from 0 to 100")
    return value / 100


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds, e.g. 10")
    return value / 1000


def build_parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description="Summarise the at=compare lines that traffic-duplicator logs when "
        "TRAFFIC_DUPLICATOR_COMPARE=on: one row per destination and route.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="log files (default: stdin)")
    parser.add_argument("--json", action="store_true", help='print {"rows": [...]} instead')
    parser.add_argument(
        "--fail-on-flagged", action="store_true", help="exit 1 when any row is flagged"
    )
    parser.add_argument(
        "--relative-threshold",
        type=_percent,
        default=RELATIVE_THRESHOLD,
        metavar="PCT",
        help="Diffy's relative threshold, percent (default 20)",
    )
    parser.add_argument(
        "--absolute-threshold",
        type=_percent,
        default=ABSOLUTE_THRESHOLD,
        metavar="PCT",
        help="Diffy's absolute threshold, percent of compared requests (default 0.03)",
    )
    parser.add_argument(
        "--latency-threshold",
        type=_milliseconds,
        default=LATENCY_ABSOLUTE_THRESHOLD,
        metavar="MS",
        help="median shift beyond the baseline's that flags a route (default 10)",
    )
    parser.add_argument(
        "--plain", action="store_true", help="never draw the table with rich, even on a terminal"
    )
    return parser


def _file_lines(path: str) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            yield from handle
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None


def _sources(files: Sequence[str]) -> list[tuple[str, Iterable[str]]]:
    if not files:
        return [("stdin", sys.stdin)]
    return [(path, _file_lines(path)) for path in files]


def run(argv: Sequence[str], out: TextIO) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = reader.read(_sources(args.files))
    except OSError as exc:  # standard input itself failed
        raise ReportError(f"cannot read standard input: {exc.strerror or exc}") from None
    if result.malformed:
        print(
            f"{PROG}: warning: skipped {result.malformed} malformed at=compare line(s); "
            f"first: {result.problems[0]}",
            file=sys.stderr,
        )
    if masked := result.masked_fields():
        print(
            f"{PROG}: warning: the logs masked the counts of {', '.join(masked)[:200]} "
            "(written by an older traffic-duplicator); those fields are left out",
            file=sys.stderr,
        )
    if not result.records:
        where = ", ".join(args.files) or "standard input"
        raise ReportError(
            f"no at=compare lines in {where} ({result.lines_read} lines read); is "
            "TRAFFIC_DUPLICATOR_COMPARE=on, and has an interval (60 s) passed?"
        )
    rows = merge.merge(result.records)
    thresholds = Thresholds(
        relative=args.relative_threshold,
        absolute=args.absolute_threshold,
        latency_absolute=args.latency_threshold,
    )
    merge.flag(rows, thresholds)
    if args.json:
        json.dump({"rows": [merge.to_json(row) for row in rows]}, out, indent=2)
        out.write("\n")
    elif not args.plain and out.isatty() and render.rich_available():
        render.boxed(rows, out)
    else:
        render.plain(rows, out)
    if args.fail_on_flagged and any(row.flagged for row in rows):
        return FLAGGED_EXIT_STATUS
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv, sys.stdout)
    except UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0  # `| head` closed the pipe: not an error
