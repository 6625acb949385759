"""The log lines comparison writes, `at=compare` and `at=difference`: names and encodings.

The replayer writes them and the report reads them, so both sides take their names from
here. An `at=compare` line covers one output and route over one interval (or the last,
partial one at exit, `final=true`); counts are for that interval only, so lines from many
dynos and intervals add up.

| key | meaning |
|---|---|
| `source` | the dyno (`$DYNO`) |
| `destination` | the output's URL, credentials masked |
| `role` | `baseline` or `candidate` (TRAFFIC_DUPLICATOR_COMPARE_BASELINE) |
| `route` | `METHOD /normalised/path`, or `other` past the route cap |
| `compared` | response pairs compared |
| `status_mismatch`, `header_mismatch`, `body_mismatch` | pairs with that kind of difference |
| `errors` | requests the destination did not answer (timeout, refused, bad response) |
| `dropped` | answers that could not be paired in time or within the memory bounds |
| `production_latency`, `shadow_latency` | latency histograms (see histogram.py) |
| `fields` | differing fields and how many pairs differed there: `status=2,body:$.name=5` |
| `end` | the interval's end, Unix seconds |
| `count#compare.*`, `sample#compare.*` | Heroku log-metrics keys for Librato-style drains |

`fields` holds field names and counts, never a value: a secret-named header's count stays
visible (`header:x-auth-token=3`), and the line is written with `render_fields` so that the
log masking (redact.py) does not take the count for the header's value.

In `fields`, the characters `%`, `,`, `=`, quotes, backslash, space and control characters
inside a field's name are written as `%XX` (UTF-8), so any JSON key survives.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from traffic_duplicator.redact import MASK, mask_counts

COMPARE = "compare"
DIFFERENCE = "difference"
BASELINE = "baseline"
CANDIDATE = "candidate"
COUNTS = ("compared", "status_mismatch", "header_mismatch", "body_mismatch", "errors", "dropped")
PRODUCTION_LATENCY = "production_latency"
SHADOW_LATENCY = "shadow_latency"
FIELDS = "fields"
OTHER_FIELD = "other"
METRIC_PREFIX = "compare."
# Logplex splits lines at 10,000 bytes; stay well under it.
LINE_BUDGET = 8000

_UNSAFE = re.compile(r"[%,=\"\\\s\x00-\x1f\x7f]")


def _escape(name: str) -> str:
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), name)


def encode_fields(counts: dict[str, int]) -> str:
    """`name=count` pairs, most frequent first."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ",".join(f"{_escape(name)}={count}" for name, count in ordered)


def render_fields(counts: dict[str, int]) -> str:
    """`fields="…"` for a logfmt line: `encode_fields` (no quote, backslash or space left
    to escape), masked as a list of counts (redact.mask_counts), not as free text."""
    return f'{FIELDS}="{mask_counts(encode_fields(counts))}"'


def decode_fields(text: str, masked: list[str] | None = None) -> dict[str, int]:
    """Read `encode_fields`' output; raises ValueError on anything else.

    With a `masked` list, an entry whose count was masked (`header:x-auth-token=***`, as
    earlier versions logged secret-named headers) goes to that list, not into an error."""
    counts: dict[str, int] = {}
    for token in text.split(",") if text else ():
        name, equals, count = token.rpartition("=")
        if masked is not None and equals and name and count == MASK:
            masked.append(unquote(name))
            continue
        if not equals or not name or not count.isdigit():
            raise ValueError(f"bad field count {token[:40]!r}")
        key = unquote(name)
        counts[key] = counts.get(key, 0) + int(count)
    return counts
