"""Finding `at=compare` lines in whatever log text the user has.

Lines may come straight from the wrapper (`replayer | at=compare …`), from
`heroku logs` (`2026-05-01T10:00:00.000000+00:00 app[web.1]: at=compare …`), or from a
drain's archive (syslog framing in front). Whatever precedes ` at=compare ` is ignored,
and so is every line without it. A line seen twice (overlapping downloads) counts once:
each carries its dyno and its interval's end, so two genuine lines are never identical.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from traffic_duplicator.compare import lines
from traffic_duplicator.compare.histogram import Histogram
from traffic_duplicator.report.logfmt import parse_logfmt

_COMPARE = re.compile(r"(?:^|\s)(at=compare(?:\s|$).*)")
MAX_PROBLEMS_KEPT = 5


@dataclass(frozen=True)
class CompareRecord:
    """One parsed `at=compare` line."""

    destination: str
    role: str
    route: str
    counts: dict[str, int]
    production: Histogram
    shadow: Histogram
    fields: dict[str, int]
    # Fields whose count the log masked (earlier versions, secret-named headers): the
    # line's other counts are good, these fields' counts are unknown.
    masked_fields: tuple[str, ...] = ()


@dataclass
class ReadResult:
    records: list[CompareRecord] = field(default_factory=list)
    lines_read: int = 0
    duplicates: int = 0
    malformed: int = 0
    problems: list[str] = field(default_factory=list)  # the first few, as `FILE line N: why`

    def masked_fields(self) -> list[str]:
        """Every field whose count was masked in some line, sorted."""
        return sorted({name for record in self.records for name in record.masked_fields})


def parse_record(text: str) -> CompareRecord:
    """An `at=compare …` line as a record; raises ValueError saying what is wrong."""
    values = parse_logfmt(text)
    missing = [
        key
        for key in ("destination", "route", *lines.COUNTS, lines.PRODUCTION_LATENCY)
        if key not in values
    ]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    counts = {}
    for key in lines.COUNTS:
        if not values[key].isdigit():
            raise ValueError(f"{key}={values[key][:20]!r} is not a count")
        counts[key] = int(values[key])
    masked: list[str] = []
    fields = lines.decode_fields(values.get(lines.FIELDS, ""), masked)
    return CompareRecord(
        destination=values["destination"],
        role=values.get("role", lines.CANDIDATE),
        route=values["route"],
        counts=counts,
        production=Histogram.decode(values[lines.PRODUCTION_LATENCY]),
        shadow=Histogram.decode(values.get(lines.SHADOW_LATENCY, "h1;")),
        fields=fields,
        masked_fields=tuple(masked),
    )


def read(sources: Iterable[tuple[str, Iterable[str]]]) -> ReadResult:
    """Every distinct `at=compare` record in `(name, lines)` sources, and what was skipped."""
    result = ReadResult()
    seen: set[str] = set()
    for name, text, number in _numbered(sources):
        result.lines_read += 1
        match = _COMPARE.search(text)
        if match is None:
            continue
        line = match.group(1).rstrip()
        if line in seen:
            result.duplicates += 1
            continue
        seen.add(line)
        try:
            result.records.append(parse_record(line))
        except ValueError as exc:
            result.malformed += 1
            if len(result.problems) < MAX_PROBLEMS_KEPT:
                result.problems.append(f"{name} line {number}: {exc}")
    return result


def _numbered(sources: Iterable[tuple[str, Iterable[str]]]) -> Iterator[tuple[str, str, int]]:
    for name, stream in sources:
        for number, text in enumerate(stream, 1):
            yield name, text, number
