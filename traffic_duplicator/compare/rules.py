"""What a comparison ignores: the default header list, and the user's additions.

Headers ignored by default, and why:

- values that change on every response whatever the code does: `Date`, `Age`, `Expires`,
  `Last-Modified` (set from clocks and deploy times), `ETag` (a hash or an mtime; any real
  change in content already shows as a body difference);
- per-request ids and timings: `X-Request-Id`, `Request-Id`, `X-Correlation-Id`,
  `X-Runtime`, `X-Request-Start`, `X-Response-Time`, `Server-Timing`, `Traceparent`,
  `Tracestate`, and the `X-B3-*`, `X-Amzn-*`, `X-Amz-Cf-*`, `X-Cloud-Trace-*` families;
- what the platform or a CDN in front adds, which differs between environments:
  `Server`, `Via`, `X-Powered-By`, `Alt-Svc`, `Report-To`, `Reporting-Endpoints`, `NEL`,
  `CF-Ray`, `CF-Cache-Status`, `X-Cache*`, `X-Served-By`, `X-Timer`, `X-Heroku-*`;
- rate-limit counters (`X-RateLimit-*`, `RateLimit-*`): they count down per client;
- `Set-Cookie`: session ids differ on every response;
- hop-by-hop headers (RFC 9110 section 7.6.1: `Connection`, `Keep-Alive`,
  `Proxy-Connection`, `Transfer-Encoding`, `TE`, `Trailer`, `Upgrade`) and
  `Content-Length`: they describe the framing, not the content; the body comparison sees
  every change in content, whether it arrived chunked or compressed differently.

`TRAFFIC_DUPLICATOR_COMPARE_IGNORE` is a comma-separated list. `$…` entries are JSON paths
(see jsondiff); other entries are header names, `Name*` ignores every header starting with
`Name`, and `!Name` compares a header the defaults ignore:
`X-Build-Sha, X-Backend-*, !ETag, $.meta.generated_at, $..request_id`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from traffic_duplicator.compare.jsondiff import DEFAULT_MAX_DIFFERENCES, JsonPattern
from traffic_duplicator.errors import UserError

IGNORE_VARIABLE = "TRAFFIC_DUPLICATOR_COMPARE_IGNORE"
# Largest decoded body compared structurally: bounds what a small gzip bomb can cost.
DEFAULT_DECODED_LIMIT = 1024 * 1024

DEFAULT_IGNORED_HEADERS = frozenset(
    {
        "date",
        "age",
        "expires",
        "last-modified",
        "etag",
        "x-request-id",
        "request-id",
        "x-correlation-id",
        "x-runtime",
        "x-request-start",
        "x-response-time",
        "server-timing",
        "traceparent",
        "tracestate",
        "server",
        "via",
        "x-powered-by",
        "alt-svc",
        "report-to",
        "reporting-endpoints",
        "nel",
        "cf-ray",
        "cf-cache-status",
        "x-served-by",
        "x-timer",
        "set-cookie",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
    }
)
DEFAULT_IGNORED_PREFIXES = (
    "x-b3-",
    "x-amzn-",
    "x-amz-cf-",
    "x-cloud-trace-",
    "x-cache",
    "x-heroku-",
    "x-ratelimit-",
    "ratelimit-",
)
_TOKEN = re.compile(r"[-!#$%&'+.^_`|~0-9A-Za-z]+")


class IgnoreError(UserError):
    """An entry of TRAFFIC_DUPLICATOR_COMPARE_IGNORE that cannot be used."""


@dataclass(frozen=True)
class CompareRules:
    """What to leave out of a comparison, and the bounds of the work it may do."""

    ignored_headers: frozenset[str] = DEFAULT_IGNORED_HEADERS
    ignored_prefixes: tuple[str, ...] = DEFAULT_IGNORED_PREFIXES
    compared_headers: frozenset[str] = field(default_factory=frozenset)  # `!Name` entries
    json_ignore: tuple[JsonPattern, ...] = ()
    decoded_limit: int = DEFAULT_DECODED_LIMIT
    max_differences: int = DEFAULT_MAX_DIFFERENCES

    def ignores_header(self, lower_name: str) -> bool:
        if lower_name in self.compared_headers:
            return False
        return lower_name in self.ignored_headers or lower_name.startswith(self.ignored_prefixes)


def parse_ignore(text: str, base: CompareRules = CompareRules()) -> CompareRules:
    """`base` plus the entries of a TRAFFIC_DUPLICATOR_COMPARE_IGNORE value (module docstring)."""
    headers = set(base.ignored_headers)
    prefixes = list(base.ignored_prefixes)
    compared = set(base.compared_headers)
    patterns = list(base.json_ignore)
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        if entry.startswith("$"):
            try:
                patterns.append(JsonPattern.parse(entry))
            except ValueError as exc:
                raise IgnoreError(f"{IGNORE_VARIABLE}: {exc}") from None
            continue
        negate = entry.startswith("!")
        name = entry[1:] if negate else entry
        prefix = name.endswith("*")
        name = (name[:-1] if prefix else name).lower()
        if _TOKEN.fullmatch(name) is None:
            raise IgnoreError(
                f"{IGNORE_VARIABLE}: {entry!r} is neither a header name (X-Build-Sha, "
                "X-Backend-*, !ETag) nor a JSON path ($.meta.generated_at)"
            )
        if negate:
            compared.add(name)
        elif prefix:
            prefixes.append(name)
        else:
            headers.add(name)
    return CompareRules(
        frozenset(headers),
        tuple(prefixes),
        frozenset(compared),
        tuple(patterns),
        base.decoded_limit,
        base.max_differences,
    )
