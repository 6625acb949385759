"""Values of the filter and rewrite flags: headers, regexes, rewrites, params, limiters.

Each follows gor's own parsing of the flag (http_modifier_settings.go): split at the first
`:` (or `=` for params, `,` between a header rewrite's regex and its replacement).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from traffic_duplicator.options.errors import BadValue
from traffic_duplicator.options.goregex import GoRegex, compile_go_regex
from traffic_duplicator.options.values import MAX_PERCENT
from traffic_duplicator.redact import MASK, is_secret_name


@dataclass(frozen=True)
class HeaderValue:
    """`--http-set-header 'Name: value'`: the name as written, the value trimmed."""

    name: str
    value: str


@dataclass(frozen=True)
class HeaderRegex:
    """`--http-allow-header`/`--http-disallow-header 'Name: regex'`."""

    name: str
    regex: GoRegex


@dataclass(frozen=True)
class HeaderRewrite:
    """`--http-rewrite-header 'Name: regex,replacement'`; the replacement is a Go template."""

    name: str
    regex: GoRegex
    target: bytes


@dataclass(frozen=True)
class UrlRewrite:
    """`--http-rewrite-url 'regex:replacement'`, applied to the request target."""

    regex: GoRegex
    target: bytes


@dataclass(frozen=True)
class HashLimit:
    """`--http-header-limiter`/`--http-param-limiter 'name: N%'`: keep N % by FNV-1a hash."""

    name: str
    percent: int


_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_NAME_END = re.compile(r"[\s:=]")


def _shown(text: str) -> str:
    """A flag value as an error may quote it: nothing after a credential's name."""
    name = _NAME_END.split(text.strip(), maxsplit=1)[0]
    if name != text.strip() and is_secret_name(name):
        return f"{name} {MASK}"
    return text


def _header_name(name: str, text: str, example: str) -> str:
    stripped = name.strip()
    if not _TOKEN.fullmatch(stripped):
        raise BadValue(f"{_shown(text)!r} does not start with a header name; write e.g. {example}")
    return stripped


def parse_header_value(text: str) -> HeaderValue:
    """`Name: value` for `--http-set-header`."""
    name, colon, value = text.partition(":")
    if not colon:
        raise BadValue(f"{_shown(text)!r} is not 'Name: value', e.g. 'X-Mirrored: 1'")
    return HeaderValue(_header_name(name, text, "'X-Mirrored: 1'"), value.strip())


def parse_header_regex(text: str) -> HeaderRegex:
    """`Name: regex` or `Name:regex` for the header filters."""
    name, colon, pattern = text.partition(":")
    if not colon:
        raise BadValue(f"{_shown(text)!r} is not 'Name: regex', e.g. 'Api-Version: ^v1'")
    header = _header_name(name, text, "'Api-Version: ^v1'")
    return HeaderRegex(header, compile_go_regex(pattern.strip()))


def parse_header_rewrite(text: str) -> HeaderRewrite:
    """`Name: regex,replacement` for `--http-rewrite-header`."""
    name, colon, rest = text.partition(":")
    pattern, comma, target = rest.strip().partition(",")
    if not colon or not comma:
        raise BadValue(f"{_shown(text)!r} is not 'Name: regex,replacement', e.g. 'Host: (.*),x.$1'")
    header = _header_name(name, text, "'Host: (.*).example.com,$1.beta.example.com'")
    return HeaderRewrite(header, compile_go_regex(pattern), target.encode())


def parse_url_rewrite(text: str) -> UrlRewrite:
    """`regex:replacement` for `--http-rewrite-url` (split at the first colon, as gor)."""
    pattern, colon, target = text.partition(":")
    if not colon:
        raise BadValue(f"{_shown(text)!r} is not 'regex:replacement', e.g. '/v1/(.*):/v2/$1'")
    return UrlRewrite(compile_go_regex(pattern), target.encode())


def parse_param(text: str) -> tuple[str, str]:
    """`name=value` for `--http-set-param`."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise BadValue(f"{_shown(text)!r} is not 'name=value', e.g. mirrored=1")
    return name.strip(), value.strip()


def _percent(value: str) -> int | None:
    """`N%`, or the old fraction `1/4`, as a whole percentage; None if neither."""
    if value.endswith("%") and value[:-1].strip().isdigit():
        return int(value[:-1].strip())
    num, slash, den = value.partition("/")
    if slash and num.strip().isdigit() and den.strip().isdigit() and int(den) != 0:
        return int(int(num) / int(den) * 100)
    return None


def parse_hash_limit(text: str) -> HashLimit:
    """`name: N%` (or the old `name: 1/4`) for the header and param limiters."""
    name, colon, value = text.partition(":")
    percent = _percent(value.strip()) if colon and name.strip() else None
    if percent is None:
        raise BadValue(f"{_shown(text)!r} is not 'name: N%', e.g. 'User-Id: 25%'")
    if percent > MAX_PERCENT:
        raise BadValue(f"{_shown(text)!r}: the percentage is at most 100%")
    return HashLimit(name.strip(), percent)


def parse_regex(text: str) -> GoRegex:
    return compile_go_regex(text)


def parse_method(text: str) -> bytes:
    if not _TOKEN.fullmatch(text.strip()):
        raise BadValue(f"{_shown(text)!r} is not an HTTP method, e.g. GET")
    return text.strip().encode()


def decode_basic_auth(value: bytes) -> bytes | None:
    """The `user:password` of a `Basic` Authorization value, or None."""
    if not value.startswith(b"Basic "):
        return None
    try:
        return base64.b64decode(value[6:].strip(), validate=False)
    except ValueError:
        return b""
