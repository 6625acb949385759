"""The report as text: one table per destination, plain or (with `rich`) boxed.

`rich` is optional (`pip install 'traffic-duplicator[report]'`): it only draws the same
table with borders and colour on a terminal. The plain table is the reference, and what
is printed when output is not a terminal.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import TextIO

from traffic_duplicator.report.merge import Row

HEADERS = (
    "route",
    "compared",
    "status",
    "headers",
    "body",
    "production p50/p95/p99 ms",
    "shadow p50/p95/p99 ms",
    "flagged",
    "top differing fields",
)
NUMERIC = frozenset(range(1, 7))


def _percent(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "-"


def _latencies(values: dict[str, float | None]) -> str:
    return "/".join("-" if v is None else f"{v:g}" for v in values.values())


def cells(row: Row) -> list[str]:
    compared = row.counts["compared"]
    top = ", ".join(f"{name} ({count})" for name, count in row.top_fields()[:3])
    flagged = ("yes: " + ", ".join(row.flagged_fields)) if row.flagged else "no"
    return [
        row.route,
        str(compared),
        _percent(row.counts["status_mismatch"], compared),
        _percent(row.counts["header_mismatch"], compared),
        _percent(row.counts["body_mismatch"], compared),
        _latencies(row.milliseconds(row.production)),
        _latencies(row.milliseconds(row.shadow)),
        flagged,
        top or "-",
    ]


def _groups(rows: Sequence[Row]) -> list[tuple[str, list[Row]]]:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.destination, []).append(row)
    return [(f"{name} ({group[0].role})", group) for name, group in groups.items()]


def plain(rows: Sequence[Row], out: TextIO) -> None:
    for index, (title, group) in enumerate(_groups(rows)):
        table = [list(HEADERS), *(cells(row) for row in group)]
        widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
        if index:
            out.write("\n")
        out.write(f"{title}\n")
        for line in table:
            padded = [
                value.rjust(width) if i in NUMERIC else value.ljust(width)
                for i, (value, width) in enumerate(zip(line, widths))
            ]
            out.write("  ".join(padded).rstrip() + "\n")


def rich_available() -> bool:
    return importlib.util.find_spec("rich") is not None


def boxed(rows: Sequence[Row], out: TextIO) -> None:
    """The same tables drawn by `rich` (only called when it is installed)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out)
    for title, group in _groups(rows):
        table = Table(title=title, title_justify="left")
        for i, header in enumerate(HEADERS):
            table.add_column(header, justify="right" if i in NUMERIC else "left")
        for row in group:
            table.add_row(*cells(row), style="bold red" if row.flagged else None)
        console.print(table)
