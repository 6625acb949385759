"""Comparing production's response with a shadow's: status, headers, body.

The body is decoded first (gzip, deflate; at most `decoded_limit` bytes, so a small
compressed body cannot expand without bound), then compared structurally when both sides
are JSON, byte for byte otherwise. A body cut at the capture limit on either side is
compared by its whole length and SHA-256. Other codings (br, zstd) have no decoder in the
standard library and are compared as received.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field

from traffic_duplicator.compare import jsondiff
from traffic_duplicator.compare.model import CapturedResponse
from traffic_duplicator.compare.redact import any_secret_name, is_secret_name
from traffic_duplicator.compare.rules import CompareRules

_NONCE = re.compile(r"'nonce-[^']*'")
_ORIGIN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")
_JSON_TYPE = re.compile(r"^(application|text)/([\w.+-]*\+)?json\b", re.IGNORECASE)


@dataclass(frozen=True)
class Difference:
    """One thing that differs.

    `field` is what is counted (`status`, `header:etag`, `body`, `body:$.items[*].id`);
    `where` is the concrete place (`$.items[3].id`); the values are production's and the
    shadow's (`jsondiff.MISSING` when absent), printed only through `redact.render_value`,
    and never when `secret`.
    """

    field: str
    where: str
    production: object
    shadow: object
    secret: bool = False


@dataclass
class Outcome:
    """Every difference found between one pair of responses."""

    status: Difference | None = None
    headers: list[Difference] = field(default_factory=list)
    body: list[Difference] = field(default_factory=list)

    @property
    def differences(self) -> list[Difference]:
        found = [self.status] if self.status is not None else []
        return found + self.headers + self.body


def compare(production: CapturedResponse, shadow: CapturedResponse, rules: CompareRules) -> Outcome:
    outcome = Outcome()
    if production.status != shadow.status:
        outcome.status = Difference("status", "status", production.status, shadow.status)
    outcome.headers = header_differences(production, shadow, rules)
    outcome.body = body_differences(production, shadow, rules)
    return outcome


def _normalise_header(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if name == "location":
        # Each environment redirects to its own host; the path and query are what matter.
        return _ORIGIN.sub("", value)
    if name in ("content-security-policy", "content-security-policy-report-only"):
        return _NONCE.sub("'nonce'", value)  # a fresh nonce per response is the point of it
    if name == "content-type":
        return ";".join(part.strip() for part in value.lower().split(";"))
    return value


def _header_map(response: CapturedResponse) -> dict[str, str]:
    """Lower-case name to every value joined by ", " (RFC 9110 section 5.3)."""
    joined: dict[str, str] = {}
    for name, value in response.headers:
        lower = name.lower()
        joined[lower] = f"{joined[lower]}, {value}" if lower in joined else value
    return joined


def header_differences(
    production: CapturedResponse, shadow: CapturedResponse, rules: CompareRules
) -> list[Difference]:
    left_map, right_map = _header_map(production), _header_map(shadow)
    spelled: dict[str, str] = {}
    for name, _ in production.headers + shadow.headers:
        spelled.setdefault(name.lower(), name)
    found = []
    for lower, name in spelled.items():
        if rules.ignores_header(lower):
            continue
        left = _normalise_header(lower, left_map.get(lower))
        right = _normalise_header(lower, right_map.get(lower))
        if left != right:
            found.append(
                Difference(
                    f"header:{lower}",
                    f"header {name}",
                    jsondiff.MISSING if left is None else left,
                    jsondiff.MISSING if right is None else right,
                    is_secret_name(lower),
                )
            )
    return found


def decode_body(response: CapturedResponse, limit: int) -> bytes | None:
    """The body with its content codings undone, or None if that is not possible in `limit`."""
    if response.truncated:
        return None
    data = response.body
    codings = [c.strip().lower() for c in (response.header("content-encoding") or "").split(",")]
    for coding in reversed([c for c in codings if c and c != "identity"]):
        if coding in ("gzip", "x-gzip"):
            decoded = _inflate(data, 16 + zlib.MAX_WBITS, limit)
        elif coding == "deflate":
            # RFC 9110 says zlib-wrapped; some servers send raw deflate anyway.
            decoded = _inflate(data, zlib.MAX_WBITS, limit)
            if decoded is None:
                decoded = _inflate(data, -zlib.MAX_WBITS, limit)
        else:
            return None
        if decoded is None:
            return None
        data = decoded
    return data


def _inflate(data: bytes, wbits: int, limit: int) -> bytes | None:
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(data, limit)
    except zlib.error:
        return None
    if inflater.unconsumed_tail or len(out) > limit:
        return None  # larger than we are willing to hold
    return out


def _summary(response: CapturedResponse) -> str:
    return f"{response.body_length} bytes, sha256 {response.digest[:12]}"


def _whole_body_difference(
    production: CapturedResponse, shadow: CapturedResponse
) -> list[Difference]:
    same = production.body_length == shadow.body_length and production.digest == shadow.digest
    return [] if same else [Difference("body", "body", _summary(production), _summary(shadow))]


def _parse_json(response: CapturedResponse, data: bytes) -> object:
    """The parsed body when it is JSON (by Content-Type, or by its first byte), else MISSING."""
    content_type = response.header("content-type")
    if content_type is not None and _JSON_TYPE.match(content_type) is None:
        return jsondiff.MISSING
    if content_type is None and data.lstrip()[:1] not in (b"{", b"["):
        return jsondiff.MISSING
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return jsondiff.MISSING


def body_differences(
    production: CapturedResponse, shadow: CapturedResponse, rules: CompareRules
) -> list[Difference]:
    if (
        production.body == shadow.body
        and production.body_length == shadow.body_length
        and production.body_digest == shadow.body_digest
    ):
        return []  # the same bytes: the common case, and no need to decode or parse
    left = decode_body(production, rules.decoded_limit)
    right = decode_body(shadow, rules.decoded_limit)
    if left is None or right is None:
        return _whole_body_difference(production, shadow)
    left_doc, right_doc = _parse_json(production, left), _parse_json(shadow, right)
    if left_doc is jsondiff.MISSING or right_doc is jsondiff.MISSING:
        if left == right:
            return []
        return [Difference("body", "body", _summary(production), _summary(shadow))]
    try:
        found = jsondiff.diff(left_doc, right_doc, rules.json_ignore, rules.max_differences)
    except RecursionError:
        return _whole_body_difference(production, shadow)
    return [
        Difference(
            "body:" + jsondiff.field_path(path),
            jsondiff.render_path(path),
            a,
            b,
            any_secret_name(str(part) for part in path),
        )
        for path, a, b in found
    ]
