"""GoReplay options: the one parser for `config/gor.options` and for the replayer's argv.

The file holds shell-like words (quotes, backslashes, `#` comments), any number of flags
per line, `--flag value` or `--flag=value`, one or two dashes, as gor's Go `flag` package
reads them. Flags are checked against one table of GoReplay names (1.3 plus the older
names still found in users' files); each value is checked by the same function the
replayer later uses to build its configuration, so a file that passes at build time
cannot fail at run time.

Words are never expanded: `$VAR` and `$1` are kept literally, as gor receives them when
no shell is involved (rewrite targets such as `/v2/$1` rely on that).
"""

from __future__ import annotations

import base64
import difflib
import enum
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from traffic_duplicator.addr import Address, parse_host_port
from traffic_duplicator.errors import AddressError, UserError

DEFAULT_SOURCE = "config/gor.options"
REAL_GOR_FIX = "needs a real gor binary (see vendor/gor/), or remove it"
MAX_PERCENT = 100


class OptionsError(UserError):
    """A mistake in GoReplay options; the message is one line naming where and the fix."""


# --------------------------------------------------------------------------------------
# Words: shell-like splitting that remembers the line each word starts on.


@dataclass(frozen=True)
class Word:
    text: str
    line: int


class _SplitError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


# Inside double quotes a backslash escapes only these, as in POSIX sh.
_DQUOTE_ESCAPABLE = '$`"\\\n'


def _continuation(text: str, i: int) -> int:
    """Length of a backslash-newline (also with CRLF) at `i`, which the shell removes."""
    if text.startswith("\\\n", i):
        return 2
    if text.startswith("\\\r\n", i):
        return 3
    return 0


def split_words(text: str) -> list[Word]:
    """Split `text` like a POSIX shell would (no expansion); `#` starts a comment."""
    words: list[Word] = []
    i, n, line = 0, len(text), 1
    while i < n:
        char = text[i]
        if char == "\n":
            line += 1
            i += 1
            continue
        if char in " \t\r\f\v":
            i += 1
            continue
        continuation = _continuation(text, i)
        if continuation:
            line += 1
            i += continuation
            continue
        if char == "#":  # a comment only where a word would start, as in sh
            while i < n and text[i] != "\n":
                i += 1
            continue
        start_line = line
        parts: list[str] = []
        while i < n and text[i] not in " \t\r\n\f\v":
            char = text[i]
            if char == "'":
                end = text.find("'", i + 1)
                if end < 0:
                    raise _SplitError(start_line, "unterminated ' quote (add the closing ')")
                chunk = text[i + 1 : end]
                line += chunk.count("\n")
                parts.append(chunk)
                i = end + 1
            elif char == '"':
                i += 1
                while True:
                    if i >= n:
                        raise _SplitError(start_line, 'unterminated " quote (add the closing ")')
                    char = text[i]
                    if char == '"':
                        i += 1
                        break
                    if char == "\\" and i + 1 < n and text[i + 1] in _DQUOTE_ESCAPABLE:
                        if text[i + 1] == "\n":
                            line += 1
                        else:
                            parts.append(text[i + 1])
                        i += 2
                        continue
                    if char == "\n":
                        line += 1
                    parts.append(char)
                    i += 1
            elif char == "\\":
                continuation = _continuation(text, i)
                if continuation:
                    line += 1
                    i += continuation
                elif i + 1 >= n:
                    i += 1  # a trailing backslash escapes nothing
                else:
                    parts.append(text[i + 1])
                    i += 2
            else:
                parts.append(char)
                i += 1
        words.append(Word("".join(parts), start_line))
    return words


# --------------------------------------------------------------------------------------
# Values: one parsing function per kind of flag value, shared with the replayer.


class LimitKind(enum.Enum):
    RATE = "rate"  # at most N requests a second; the excess is dropped
    PERCENT = "percent"  # a random N % sample


@dataclass(frozen=True)
class Limit:
    kind: LimitKind
    value: int

    def __str__(self) -> str:
        return f"{self.value}%" if self.kind is LimitKind.PERCENT else f"{self.value}/s"


@dataclass(frozen=True)
class OutputTarget:
    """An `--output-http` destination: `URL[|N]` or `URL[|N%]`."""

    url: str  # normalised, with a scheme
    scheme: str
    host: str
    port: int
    path: str  # base path to prefix, "" when the URL has none
    limit: Limit | None

    @property
    def host_header(self) -> str:
        """The Host value gor sets: the URL's host, with the port only if not the default."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class Listen:
    """An input address `[HOST]:PORT[|limit]`."""

    address: Address
    limit: Limit | None


@dataclass(frozen=True)
class InputFile:
    path: str
    speed_percent: int  # `file|200%` replays twice as fast; 100 keeps the recorded pace


@dataclass(frozen=True)
class HeaderValue:
    name: str
    value: str


@dataclass(frozen=True)
class HeaderRegex:
    name: str
    regex: re.Pattern[bytes]


@dataclass(frozen=True)
class HeaderRewrite:
    name: str
    regex: re.Pattern[bytes]
    target: bytes


@dataclass(frozen=True)
class UrlRewrite:
    regex: re.Pattern[bytes]
    target: bytes


@dataclass(frozen=True)
class HashLimit:
    name: str
    percent: int


class BadValue(ValueError):
    """A flag value that cannot be used; the message says what is expected."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """A Go duration (`5s`, `300ms`, `1m30s`, `0`) in seconds."""
    value = text.strip()
    if value == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(value):
        match = _DURATION_PART.match(value, pos)
        if match is None:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not value or pos != len(value):
        raise BadValue(f"{text!r} is not a duration; write it with a unit, e.g. 5s or 500ms")
    return total


def parse_count(text: str) -> int:
    """A non-negative decimal integer."""
    value = text.strip()
    if not value.isdigit():
        raise BadValue(f"{text!r} is not a whole number, e.g. 10")
    return int(value)


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|k|m|g|t)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """A byte size as gor writes them: `32mb`, `5MB`, `1k`, `4096`."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise BadValue(f"{text!r} is not a size, e.g. 32mb")
    unit = (match.group(2) or "").lower()[:1]
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_limit(text: str) -> Limit:
    """The part after `|`: `N` requests a second or `N%` of requests."""
    value = text.strip()
    if value.endswith("%"):
        number = value[:-1].strip()
        if not number.isdigit():
            raise BadValue(f"limit {text!r} is not N or N%, e.g. |10 or |25%")
        return Limit(LimitKind.PERCENT, int(number))
    if not value.isdigit():
        raise BadValue(f"limit {text!r} is not N or N%, e.g. |10 or |25%")
    return Limit(LimitKind.RATE, int(value))


def _split_limit(text: str) -> tuple[str, Limit | None]:
    base, bar, suffix = text.rpartition("|")
    if not bar:
        return text, None
    return base, parse_limit(suffix)


def parse_output_http(text: str) -> OutputTarget:
    """`--output-http URL[|N|N%]`; a URL without a scheme means http://, as in gor."""
    raw, limit = _split_limit(text.strip())
    if limit is not None and limit.kind is LimitKind.PERCENT and limit.value > MAX_PERCENT:
        raise BadValue(f"{text!r}: a percentage limit on an output is at most 100%")
    url = raw.strip()
    if not url:
        raise BadValue("the URL is empty; write e.g. https://staging.example.com")
    if "://" not in url:
        url = "http://" + url.lstrip("/")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadValue(f"{raw!r} is not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadValue(f"{raw!r} is not an http:// or https:// URL")
    host = parts.hostname or ""
    if not host:
        raise BadValue(f"{raw!r} has no host; write e.g. https://staging.example.com")
    if port is None:
        port = 443 if scheme == "https" else 80
    path = parts.path.rstrip("/")
    normalised = f"{scheme}://{parts.netloc}{path}"
    return OutputTarget(normalised, scheme, host, port, path, limit)


def parse_listen(text: str) -> Listen:
    """`[HOST]:PORT[|limit]` for `--input-http` and `--input-tcp`."""
    raw, limit = _split_limit(text.strip())
    try:
        return Listen(parse_host_port(raw), limit)
    except AddressError as exc:
        raise BadValue(str(exc)) from None


def parse_input_file(text: str) -> InputFile:
    """`PATH[|N%]`: a capture to replay, optionally faster or slower than recorded."""
    raw, limit = _split_limit(text)
    if not raw:
        raise BadValue("the path is empty")
    if limit is None:
        return InputFile(raw, 100)
    if limit.kind is not LimitKind.PERCENT or limit.value == 0:
        raise BadValue(f"{text!r}: an input file takes a speed like |200%, not a rate")
    return InputFile(raw, limit.value)


# Go's RE2 and Python's re agree on the syntax options files use; these are the gaps.
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7F",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1F\\x7F",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_POSIX_CLASS = re.compile(r"\[:(\^?)([a-z]+):\]")


def compile_go_regex(pattern: str) -> re.Pattern[bytes]:
    """Compile a Go (RE2) regular expression for matching raw request bytes."""

    def posix(match: re.Match[str]) -> str:
        cls = _POSIX_CLASSES.get(match.group(2))
        if cls is None or match.group(1):
            raise BadValue(f"regular expression {pattern!r}: unsupported class {match.group(0)}")
        return cls

    translated = _POSIX_CLASS.sub(posix, pattern).replace("\\z", "\\Z")
    try:
        return re.compile(translated.encode())
    except re.error as exc:
        raise BadValue(f"{pattern!r} is not a valid regular expression ({exc})") from None


_TEMPLATE_REF = re.compile(rb"\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def go_expand(template: bytes, match: re.Match[bytes]) -> bytes:
    """Expand `$1`, `${1}`, `$name`, `${name}` and `$$` as Go's Regexp.Expand does."""

    def ref(found: re.Match[bytes]) -> bytes:
        name = found.group(1) or found.group(2)
        if name is None:
            return b"$"
        key: int | str = int(name) if name.isdigit() else name.decode()
        try:
            return match.group(key) or b""
        except IndexError:
            return b""  # Go expands an unknown group to nothing

    return _TEMPLATE_REF.sub(ref, template)


def go_replace_all(regex: re.Pattern[bytes], template: bytes, subject: bytes) -> bytes:
    """Go's Regexp.ReplaceAll: every match replaced by the expanded template."""
    return regex.sub(lambda m: go_expand(template, m), subject)


_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")


def _header_name(name: str, text: str, example: str) -> str:
    stripped = name.strip()
    if not _TOKEN.fullmatch(stripped):
        raise BadValue(f"{text!r} does not start with a header name; write e.g. {example}")
    return stripped


def parse_header_value(text: str) -> HeaderValue:
    """`Name: value` for `--http-set-header`."""
    name, colon, value = text.partition(":")
    if not colon:
        raise BadValue(f"{text!r} is not 'Name: value', e.g. 'X-Mirrored: 1'")
    return HeaderValue(_header_name(name, text, "'X-Mirrored: 1'"), value.strip())


def parse_header_regex(text: str) -> HeaderRegex:
    """`Name: regex` or `Name:regex` for the header filters."""
    name, colon, pattern = text.partition(":")
    if not colon:
        raise BadValue(f"{text!r} is not 'Name: regex', e.g. 'Api-Version: ^v1'")
    header = _header_name(name, text, "'Api-Version: ^v1'")
    return HeaderRegex(header, compile_go_regex(pattern.strip()))


def parse_header_rewrite(text: str) -> HeaderRewrite:
    """`Name: regex,replacement` for `--http-rewrite-header`."""
    name, colon, rest = text.partition(":")
    pattern, comma, target = rest.strip().partition(",")
    if not colon or not comma:
        raise BadValue(f"{text!r} is not 'Name: regex,replacement', e.g. 'Host: (.*),x.$1'")
    header = _header_name(name, text, "'Host: (.*).example.com,$1.beta.example.com'")
    return HeaderRewrite(header, compile_go_regex(pattern), target.encode())


def parse_url_rewrite(text: str) -> UrlRewrite:
    """`regex:replacement` for `--http-rewrite-url` (split at the first colon, as gor)."""
    pattern, colon, target = text.partition(":")
    if not colon:
        raise BadValue(f"{text!r} is not 'regex:replacement', e.g. '/v1/(.*):/v2/$1'")
    return UrlRewrite(compile_go_regex(pattern), target.encode())


def parse_param(text: str) -> tuple[str, str]:
    """`name=value` for `--http-set-param`."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise BadValue(f"{text!r} is not 'name=value', e.g. api_key=1")
    return name.strip(), value.strip()


def parse_hash_limit(text: str) -> HashLimit:
    """`name: N%` (or the old `name: 1/4`) for the header and param limiters."""
    name, colon, value = text.partition(":")
    value = value.strip()
    if not colon or not name.strip():
        raise BadValue(f"{text!r} is not 'name: N%', e.g. 'User-Id: 25%'")
    if value.endswith("%") and value[:-1].strip().isdigit():
        percent = int(value[:-1].strip())
    elif "/" in value:
        num, _, den = value.partition("/")
        if not (num.strip().isdigit() and den.strip().isdigit()) or int(den) == 0:
            raise BadValue(f"{text!r} is not 'name: N%', e.g. 'User-Id: 25%'")
        percent = int(int(num) / int(den) * 100)
    else:
        raise BadValue(f"{text!r} is not 'name: N%', e.g. 'User-Id: 25%'")
    if percent > MAX_PERCENT:
        raise BadValue(f"{text!r}: the percentage is at most 100%")
    return HashLimit(name.strip(), percent)


def parse_regex(text: str) -> re.Pattern[bytes]:
    return compile_go_regex(text)


def parse_method(text: str) -> bytes:
    if not _TOKEN.fullmatch(text.strip()):
        raise BadValue(f"{text!r} is not an HTTP method, e.g. GET")
    return text.strip().encode()


def parse_text(text: str) -> str:
    return text


def parse_verbose(text: str) -> int:
    """gor 1.x takes a level; 0.x files write --verbose=true."""
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    return parse_count(text)


def decode_basic_auth(value: bytes) -> bytes | None:
    """The `user:password` of a `Basic` Authorization value, or None."""
    if not value.startswith(b"Basic "):
        return None
    try:
        return base64.b64decode(value[6:].strip(), validate=False)
    except ValueError:
        return b""


# --------------------------------------------------------------------------------------
# The flag table.


class Kind(enum.Enum):
    BOOL = "bool"  # `--flag` or `--flag=true|false`; never consumes the next word
    VALUE = "value"  # `--flag value` or `--flag=value`
    OPTIONAL_COUNT = "optional-count"  # `--verbose`, `--verbose 2`, `--verbose=2`


class Scope(enum.Enum):
    INPUT = "input"  # the wrapper supplies the input: never in config/gor.options
    OPTION = "option"  # a GoReplay flag for config/gor.options
    EXTENSION = "extension"  # ours, not GoReplay's: the replayer's command line only


@dataclass(frozen=True)
class Flag:
    """One flag: its canonical name, value syntax, whether we implement it, and a summary."""

    name: str
    kind: Kind
    builtin: bool
    summary: str
    parse: Callable[[str], object] | None = None
    scope: Scope = Scope.OPTION
    # An example value for error messages.
    example: str = ""
    aliases: tuple[str, ...] = field(default=())


def _b(name: str, summary: str) -> Flag:
    """A boolean flag the built-in replayer implements."""
    return Flag(name, Kind.BOOL, True, summary)


def _v(
    name: str,
    parse: Callable[[str], object],
    summary: str,
    example: str,
    *,
    scope: Scope = Scope.OPTION,
    aliases: tuple[str, ...] = (),
) -> Flag:
    """A flag with a value that the built-in replayer implements."""
    return Flag(name, Kind.VALUE, True, summary, parse, scope, example, aliases)


def _gor(name: str, kind: Kind = Kind.VALUE) -> Flag:
    """A GoReplay flag the built-in replayer does not implement."""
    return Flag(name, kind, False, "needs a real gor binary", example="VALUE")


_BOOL, _VALUE = Kind.BOOL, Kind.VALUE

FLAGS: tuple[Flag, ...] = (
    # Inputs: the replayer's command line (the wrapper passes --input-http).
    _v(
        "input-http",
        parse_listen,
        "accept requests over HTTP on [HOST]:PORT, answer 200 at once, replay them",
        ":28020",
        scope=Scope.INPUT,
    ),
    _v(
        "input-tcp",
        parse_listen,
        "accept GoReplay's TCP framing on [HOST]:PORT (gor --output-tcp, gor:// targets)",
        ":28020",
        scope=Scope.INPUT,
    ),
    _v(
        "input-file",
        parse_input_file,
        "replay a GoReplay capture file, keeping its pace (PATH|200% replays twice as fast)",
        "requests.gor",
        scope=Scope.INPUT,
    ),
    _b("input-file-loop", "replay the --input-file capture again and again"),
    _v(
        "input-file-max-wait",
        parse_duration,
        "longest pause between two replayed file requests",
        "1s",
    ),
    _v(
        "input-file-read-depth",
        parse_count,
        "accepted for compatibility; the file is streamed",
        "100",
    ),
    # HTTP output.
    _v(
        "output-http",
        parse_output_http,
        "replay each request to URL (repeatable); URL|N: at most N/s, URL|N%: a random N %",
        "https://staging.example.com",
    ),
    _b("output-http-skip-verify", "do not verify TLS certificates of https outputs"),
    _v(
        "output-http-workers",
        parse_count,
        "most connections (requests in flight) per output, opened as needed (default 256)",
        "10",
    ),
    _v(
        "output-http-workers-min",
        parse_count,
        "accepted for compatibility; the worker count is fixed",
        "1",
    ),
    _v(
        "output-http-timeout",
        parse_duration,
        "time limit for connecting, sending and reading each response (default 5s)",
        "5s",
    ),
    _v(
        "output-http-queue-len",
        parse_count,
        "requests waiting per output; more are dropped and counted (default 1000)",
        "1000",
    ),
    _v(
        "output-http-redirects",
        parse_count,
        "follow up to N redirects on the same destination (default 0)",
        "2",
    ),
    _b(
        "output-http-stats",
        "log per-output stats (queue, sent, dropped, errors, latency) periodically",
    ),
    _v(
        "output-http-stats-ms",
        parse_count,
        "interval of --output-http-stats lines in milliseconds (default 5000)",
        "5000",
    ),
    _v(
        "output-http-response-buffer",
        parse_size,
        "accepted for compatibility; responses are read and discarded",
        "64kb",
    ),
    _v(
        "output-http-worker-timeout",
        parse_duration,
        "accepted for compatibility; idle connections close after a while anyway",
        "2s",
    ),
    _b("output-http-compatibility-mode", "accepted for compatibility; no effect"),
    _b("output-http-debug", "log each replayed request's outcome (same as --verbose)"),
    _b("http-original-host", "keep the request's own Host header instead of the output's host"),
    _b("split-output", "send each request to one output, round-robin, instead of to every output"),
    # Other outputs.
    _b("output-stdout", "print each request to standard output (GoReplay's framing)"),
    _b("output-null", "accept requests and drop them (for testing)"),
    _v(
        "output-file",
        parse_text,
        "append each request to PATH in GoReplay's file format",
        "requests.gor",
    ),
    _b("output-file-append", "accepted; the built-in replayer always appends to the one file"),
    _v(
        "output-file-flush-interval",
        parse_duration,
        "how often --output-file is flushed (default 1s)",
        "1s",
    ),
    # Rewrites.
    _v(
        "http-set-header",
        parse_header_value,
        "set a header, replacing an existing one (Host too: then the output's host is not used)",
        "'X-Mirrored: 1'",
        aliases=("output-http-header",),
    ),
    _v(
        "http-rewrite-header",
        parse_header_rewrite,
        "rewrite a header's value: 'Name: regex,replacement' ($1 for groups)",
        "'Host: (.*).example.com,$1.staging.example.com'",
    ),
    _v(
        "http-rewrite-url",
        parse_url_rewrite,
        "rewrite the request target: 'regex:replacement' ($1 for groups)",
        "'/v1/(.*):/v2/$1'",
        aliases=("output-http-rewrite-url",),
    ),
    _v(
        "http-set-param",
        parse_param,
        "set a query parameter, replacing an existing one: name=value",
        "api_key=1",
    ),
    # Filters.
    _v(
        "http-allow-url",
        parse_regex,
        "replay only requests whose target matches the regex",
        "^/api/",
        aliases=("output-http-url-regexp",),
    ),
    _v("http-disallow-url", parse_regex, "drop requests whose target matches the regex", "^/admin"),
    _v(
        "http-allow-header",
        parse_header_regex,
        "replay only requests that have the header and whose value matches: 'Name: regex'",
        "'Api-Version: ^v1'",
        aliases=("output-http-header-filter",),
    ),
    _v(
        "http-disallow-header",
        parse_header_regex,
        "drop requests whose header matches: 'Name: regex'",
        "'User-Agent: Replayed by Gor'",
    ),
    _v(
        "http-allow-method",
        parse_method,
        "replay only these methods (repeatable)",
        "GET",
        aliases=("output-http-method",),
    ),
    _v(
        "http-header-limiter",
        parse_hash_limit,
        "replay a consistent N % of requests, chosen by the FNV-1a hash of a header: 'Name: N%'",
        "'User-Id: 25%'",
        aliases=("output-http-header-hash-filter",),
    ),
    _v(
        "http-param-limiter",
        parse_hash_limit,
        "replay a consistent N % of requests by the FNV-1a hash of a query parameter",
        "'user_id: 25%'",
    ),
    _v(
        "http-basic-auth-filter",
        parse_regex,
        "replay only requests whose decoded Basic credentials match the regex",
        "'^customer[0-9]'",
    ),
    # Process.
    _v("exit-after", parse_duration, "stop (and flush) after this long", "30s"),
    _b("stats", "log stats lines periodically (as --output-http-stats does)"),
    Flag(
        "verbose",
        Kind.OPTIONAL_COUNT,
        True,
        "log each replayed request's outcome",
        parse_verbose,
        example="1",
    ),
    _b("debug", "same as --verbose (gor 0.x)"),
    # Ours: the wrapper passes it on the replayer's command line.
    _v(
        "flush-timeout",
        parse_duration,
        "on SIGTERM, how long queued requests may take to be sent (default 20s)",
        "20s",
        scope=Scope.EXTENSION,
    ),
    # GoReplay flags only a real gor implements.
    _gor("input-raw"),
    _gor("input-raw-track-response", _BOOL),
    _gor("input-raw-engine"),
    _gor("input-raw-protocol"),
    _gor("input-raw-realip-header"),
    _gor("input-raw-expire"),
    _gor("input-raw-bpf-filter"),
    _gor("input-raw-timestamp-type"),
    _gor("input-raw-override-snaplen", _BOOL),
    _gor("input-raw-buffer-timeout"),
    _gor("input-raw-buffer-size"),
    _gor("input-raw-promisc", _BOOL),
    _gor("input-raw-monitor", _BOOL),
    _gor("input-raw-stats", _BOOL),
    _gor("input-raw-allow-incomplete", _BOOL),
    _gor("input-raw-immediate-mode", _BOOL),
    _gor("input-raw-ignore-interface"),
    _gor("copy-buffer-size"),
    _gor("input-dummy"),
    _gor("output-dummy"),
    _gor("input-tcp-secure", _BOOL),
    _gor("input-tcp-certificate"),
    _gor("input-tcp-certificate-key"),
    _gor("output-tcp"),
    _gor("output-tcp-secure", _BOOL),
    _gor("output-tcp-skip-verify", _BOOL),
    _gor("output-tcp-sticky", _BOOL),
    _gor("output-tcp-workers"),
    _gor("output-tcp-stats", _BOOL),
    _gor("output-tcp-response-buffer"),
    _gor("input-file-dry-run", _BOOL),
    _gor("output-file-size-limit"),
    _gor("output-file-queue-limit"),
    _gor("output-file-max-size-limit"),
    _gor("output-file-buffer"),
    _gor("prettify-http", _BOOL),
    _gor("middleware"),
    _gor("input-modifier"),
    _gor("output-http-track-response", _BOOL),
    _gor("output-http-elasticsearch"),
    _gor("output-binary"),
    _gor("output-binary-workers"),
    _gor("output-binary-timeout"),
    _gor("output-binary-track-response", _BOOL),
    _gor("output-binary-debug", _BOOL),
    _gor("output-kafka-host"),
    _gor("output-kafka-topic"),
    _gor("output-kafka-json-format", _BOOL),
    _gor("input-kafka-host"),
    _gor("input-kafka-topic"),
    _gor("input-kafka-json-format", _BOOL),
    _gor("kafka-tls-ca-cert"),
    _gor("kafka-tls-client-cert"),
    _gor("kafka-tls-client-key"),
    _gor("recognize-tcp-sessions", _BOOL),
    _gor("http-pprof"),
    _gor("cpuprofile"),
    _gor("memprofile"),
)

BY_NAME: dict[str, Flag] = {flag.name: flag for flag in FLAGS}
ALIASES: dict[str, str] = {alias: flag.name for flag in FLAGS for alias in flag.aliases}
# Names people write that gor never had; a specific hint beats a fuzzy one.
_HINTS = {
    "http-header": "--http-set-header",  # GoReplay's own docs use this name
    "output-kafka": "--output-kafka-host",
    "input-kafka": "--input-kafka-host",
    "output-http-header-limiter": "--http-header-limiter",
}


# --------------------------------------------------------------------------------------
# Parsed options.


@dataclass(frozen=True)
class ParsedFlag:
    """One flag occurrence: canonical name, the spelling used, its value and where it was."""

    name: str
    spelling: str
    value: str | None
    line: int
    deprecated_alias: bool
    builtin_supported: bool

    @property
    def spec(self) -> Flag:
        return BY_NAME[self.name]

    def parsed(self) -> object:
        """The value run through the flag's parser (checked already at parse time)."""
        spec = self.spec
        if self.value is None or spec.parse is None:
            return self.value
        return spec.parse(self.value)


@dataclass(frozen=True)
class GorOptions:
    """Options as written: the words to hand to gor or the replayer, and what they mean."""

    source: str
    argv: tuple[str, ...]
    flags: tuple[ParsedFlag, ...]
    unit: str = "line"  # "line" for a file, "argument" for a command line

    def needs_real_gor(self) -> tuple[ParsedFlag, ...]:
        """Flags the built-in replayer does not implement."""
        return tuple(f for f in self.flags if not f.builtin_supported)

    def outputs(self) -> tuple[str, ...]:
        """The --output-http URLs as written (without any |limit), for summaries."""
        return tuple(
            f.value.rpartition("|")[0] if "|" in f.value else f.value
            for f in self.flags
            if f.name == "output-http" and f.value is not None
        )

    def deprecated(self) -> tuple[ParsedFlag, ...]:
        return tuple(f for f in self.flags if f.deprecated_alias)

    def all(self, name: str) -> list[ParsedFlag]:
        return [f for f in self.flags if f.name == name]

    def last(self, name: str) -> ParsedFlag | None:
        found = self.all(name)
        return found[-1] if found else None

    def has(self, name: str) -> bool:
        """A flag that is present and, for booleans, not set to false."""
        last = self.last(name)
        if last is None:
            return False
        if last.spec.kind is Kind.BOOL:
            return last.value is None or _bool_value(last.value)
        return True

    def where(self, flag: ParsedFlag) -> str:
        return f"{self.source} {self.unit} {flag.line}" if flag.line else self.source

    def error(self, flag: ParsedFlag, message: str) -> OptionsError:
        return OptionsError(f"{self.where(flag)}: {message}")


_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")


def _bool_value(text: str) -> bool:
    return text in _TRUE


def _suggest(name: str) -> str:
    if name in _HINTS:
        hint = _HINTS[name]
    else:
        candidates = list(BY_NAME) + list(ALIASES)
        close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
        if not close:
            return "it is not a GoReplay flag; check the spelling or remove it"
        hint = "--" + ALIASES.get(close[0], close[0])
    spec = BY_NAME.get(hint[2:])
    extra = " It needs a real gor binary (see vendor/gor/)." if spec and not spec.builtin else ""
    return f"did you mean {hint}?{extra}"


def _parse_words(words: Sequence[Word], source: str, unit: str) -> GorOptions:
    def fail(line: int, message: str) -> OptionsError:
        where = f"{source} {unit} {line}" if line else source
        return OptionsError(f"{where}: {message}")

    flags: list[ParsedFlag] = []
    i = 0
    while i < len(words):
        word = words[i]
        text = word.text
        if not text.startswith("-") or text in ("-", "--") or text.startswith("---"):
            if text == "--":
                raise fail(word.line, "'--' ends the flags, so nothing after it is read; remove it")
            previous = flags[-1] if flags else None
            if previous is not None and previous.spec.kind is Kind.BOOL:
                raise fail(
                    word.line,
                    f"unexpected word {text!r} after --{previous.name}, which takes no value "
                    f"(write --{previous.name} or --{previous.name}=false)",
                )
            raise fail(word.line, f"unexpected word {text!r}: every option starts with --")
        spelling, equals, inline = text.partition("=")
        raw_name = spelling.lstrip("-")
        name = ALIASES.get(raw_name, raw_name)
        spec = BY_NAME.get(name)
        if spec is None:
            raise fail(word.line, f"unknown flag {spelling} ({_suggest(raw_name)})")
        value: str | None
        if spec.kind is Kind.BOOL:
            if equals and inline not in _TRUE + _FALSE:
                raise fail(word.line, f"{spelling} is true or false, not {inline!r}")
            value = inline if equals else None
            i += 1
        elif equals:
            value = inline
            i += 1
        elif spec.kind is Kind.OPTIONAL_COUNT:
            nxt = words[i + 1].text if i + 1 < len(words) else ""
            value = nxt if nxt.isdigit() else None
            i += 2 if value is not None else 1
        else:
            if i + 1 >= len(words):
                raise fail(word.line, f"{spelling} needs a value, e.g. {spelling} {spec.example}")
            value = words[i + 1].text
            looks_like_flag = value.startswith("-") and value.partition("=")[0].lstrip("-") in (
                BY_NAME.keys() | ALIASES.keys()
            )
            if looks_like_flag:
                raise fail(
                    word.line,
                    f"{spelling} needs a value before {value}, e.g. {spelling} {spec.example}",
                )
            i += 2
        if value is not None and spec.parse is not None and spec.kind is not Kind.BOOL:
            try:
                spec.parse(value)
            except BadValue as exc:
                raise fail(word.line, f"{spelling}: {exc}") from None
        builtin = spec.builtin and not (name == "output-file" and _needs_gor_file(value or ""))
        flags.append(
            ParsedFlag(
                name=name,
                spelling=spelling,
                value=value,
                line=word.line,
                deprecated_alias=raw_name in ALIASES,
                builtin_supported=builtin,
            )
        )
    return GorOptions(source, tuple(w.text for w in words), tuple(flags), unit)


def _needs_gor_file(path: str) -> bool:
    """Date placeholders and gzip are gor file-output features we do not reimplement."""
    return "%" in path or path.endswith(".gz") or path.startswith("s3://")


def parse_options(text: str, source: str = DEFAULT_SOURCE) -> GorOptions:
    """Parse the text of an options file; OptionsError names the line, flag and fix."""
    try:
        words = split_words(text)
    except _SplitError as exc:
        raise OptionsError(f"{source} line {exc.line}: {exc}") from None
    return _parse_words(words, source, "line")


def parse_argv(argv: Sequence[str], source: str = "command line") -> GorOptions:
    """Parse command-line words with the same table; positions count from 1."""
    words = [Word(text, index) for index, text in enumerate(argv, start=1)]
    return _parse_words(words, source, "argument")


def load_options(path: str | os.PathLike[str]) -> GorOptions:
    """Read and parse an options file; a missing file is an OptionsError with the fix."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise OptionsError(
            f"{name}: file not found; create it with your GoReplay flags, "
            "e.g. --output-http https://staging.example.com"
        ) from None
    except IsADirectoryError:
        raise OptionsError(f"{name}: is a directory; it must be a file of GoReplay flags") from None
    except UnicodeDecodeError:
        raise OptionsError(f"{name}: is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise OptionsError(
            f"{name}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    return parse_options(text, name)


OUTPUT_FLAGS = ("output-http", "output-stdout", "output-null", "output-file")
_GOR_OUTPUT_FLAGS = ("output-tcp", "output-binary", "output-kafka-host", "output-dummy")


def validate_options_file(options: GorOptions, gor_available: bool = False) -> None:
    """The checks `bin/compile` and the wrapper run on config/gor.options.

    Inputs are an error: the wrapper supplies the input (`--input-http` on the replayer
    port), so an input here would either be ignored or capture traffic twice. Our own
    extension flags are an error too, because a real gor would reject them.
    """
    for flag in options.flags:
        spec = flag.spec
        if spec.scope is Scope.INPUT or flag.name.startswith("input-"):
            if flag.name.startswith("input-file") and spec.scope is not Scope.INPUT:
                continue
            raise options.error(
                flag,
                f"{flag.spelling} does not belong in {options.source}: the wrapper supplies "
                "the input (it replays what the tee proxy copies); remove it",
            )
        if spec.scope is Scope.EXTENSION:
            raise options.error(
                flag,
                f"{flag.spelling} is a traffic-duplicator replayer flag, not a GoReplay flag; "
                f"remove it from {options.source}",
            )
        if not gor_available and not flag.builtin_supported:
            raise options.error(flag, f"{flag.spelling} {REAL_GOR_FIX}")
    outputs = OUTPUT_FLAGS + (_GOR_OUTPUT_FLAGS if gor_available else ())
    if not any(options.has(name) for name in outputs):
        raise OptionsError(
            f"{options.source}: no output; add e.g. --output-http https://staging.example.com"
        )


def summary(options: GorOptions) -> list[str]:
    """One plain fact per line, for build output."""
    lines: list[str] = []
    for flag in options.flags:
        if flag.name == "output-http" and flag.value is not None:
            target = parse_output_http(flag.value)
            limit = f" (limit {target.limit})" if target.limit else ""
            lines.append(f"output-http {target.url}{limit}")
        elif flag.name in ("output-file", "output-stdout", "output-null"):
            lines.append(flag.name + (f" {flag.value}" if flag.value else ""))
    for flag in options.deprecated():
        lines.append(f"deprecated {flag.spelling} ({options.unit} {flag.line}): use --{flag.name}")
    for flag in options.needs_real_gor():
        lines.append(f"needs-real-gor {flag.spelling} ({options.unit} {flag.line})")
    return lines


def deprecation_notices(options: GorOptions) -> Iterable[str]:
    """One line per deprecated alias, for run-time logs."""
    for flag in options.deprecated():
        yield f"{options.where(flag)}: {flag.spelling} is deprecated; use --{flag.name}"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m traffic_duplicator.options PATH [--gor-available]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    gor_available = "--gor-available" in args
    paths = [a for a in args if a != "--gor-available"]
    if len(paths) != 1 or paths[0].startswith("-"):
        print("usage: python -m traffic_duplicator.options PATH [--gor-available]", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
