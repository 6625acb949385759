"""The replayer's `--help` and `--version`: GoReplay's flags, from the one flag table.

gor prints its usage for `-h`/`--help` and exits 0; so do we, without starting anything.
The text is built from `options.FLAGS`, so it cannot drift from what the parser accepts.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import traffic_duplicator
from traffic_duplicator.options import FLAGS, Flag, Kind, Scope

PROG = "python -m traffic_duplicator.replay"
HELP_WORDS = frozenset({"-h", "-help", "--help"})  # Go's flag package takes all three
VERSION_WORDS = frozenset({"-version", "--version"})
_NAME_WIDTH = 34
_WIDTH = 100


def asks_for(argv: Sequence[str]) -> str | None:
    """ "help" or "version" when the first word asks for it (checked before any parsing)."""
    if not argv:
        return None
    if argv[0] in HELP_WORDS:
        return "help"
    if argv[0] in VERSION_WORDS:
        return "version"
    return None


def version() -> str:
    return f"{PROG} (traffic-duplicator) {traffic_duplicator.__version__}"


def _synopsis(flag: Flag) -> str:
    spelling = f"--{flag.name}"
    if flag.kind is Kind.VALUE:
        return f"{spelling} {flag.example}"
    if flag.kind is Kind.OPTIONAL_COUNT:
        return f"{spelling} [N]"
    return spelling


def _entry(flag: Flag) -> list[str]:
    synopsis = _synopsis(flag)
    summary = flag.summary
    if flag.aliases:
        summary += " (also " + ", ".join(f"--{alias}" for alias in flag.aliases) + ")"
    lines = textwrap.wrap(summary, _WIDTH - _NAME_WIDTH - 4, break_on_hyphens=False) or [""]
    if len(synopsis) >= _NAME_WIDTH:
        head = [f"  {synopsis}"]
        rest = lines
    else:
        head = [f"  {synopsis:<{_NAME_WIDTH}}  {lines[0]}"]
        rest = lines[1:]
    return head + [" " * (_NAME_WIDTH + 4) + line for line in rest]


def usage() -> str:
    """The whole help text, ending with a newline."""
    sections = {
        Scope.INPUT: "Inputs (the wrapper passes one; config/gor.options never needs them):",
        Scope.OPTION: "GoReplay flags (the same in config/gor.options):",
        Scope.EXTENSION: "Ours (not GoReplay's):",
    }
    lines = [
        f"usage: {PROG} --input-http [HOST]:PORT --output-http URL [flags...]",
        "",
        "The built-in replayer: replays HTTP requests to every --output-http, with GoReplay's",
        "flags. The first SIGTERM flushes the queues (--flush-timeout), a second one stops.",
    ]
    for scope, title in sections.items():
        lines += ["", title]
        for flag in FLAGS:
            if flag.builtin and flag.scope is scope:
                lines += _entry(flag)
    needs_gor = [f"--{flag.name}" for flag in FLAGS if not flag.builtin]
    lines += ["", "Accepted only with a real gor binary (bin/gor in the app):"]
    lines += textwrap.wrap(
        ", ".join(needs_gor), _WIDTH, initial_indent="  ", subsequent_indent="  ",
        break_on_hyphens=False,
    )  # fmt: skip
    return "\n".join(lines) + "\n"
