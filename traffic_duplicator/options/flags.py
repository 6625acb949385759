"""The flag table: every GoReplay flag we know, its value syntax, and its typed parser.

Each flag the built-in replayer implements is a module constant typed by what its value
parses to (`OUTPUT_HTTP: TypedFlag[OutputTarget]`), so the replayer reads parsed values with
`options.values(flags.OUTPUT_HTTP)` and gets real types. Names are GoReplay 1.3's, plus
the older names still found in users' files as aliases.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from traffic_duplicator.options import rules
from traffic_duplicator.options.urls import parse_output_http
from traffic_duplicator.options.values import (
    parse_bool,
    parse_count,
    parse_duration,
    parse_input_file,
    parse_listen,
    parse_size,
    parse_text,
    parse_verbose,
)

T_co = TypeVar("T_co", covariant=True)


class Kind(enum.Enum):
    BOOL = "bool"  # `--flag` or `--flag=true|false`; never consumes the next word
    VALUE = "value"  # `--flag value` or `--flag=value`
    OPTIONAL_COUNT = "optional-count"  # `--verbose`, `--verbose 2`, `--verbose=2`


class Scope(enum.Enum):
    INPUT = "input"  # the wrapper supplies the input: never in config/gor.options
    OPTION = "option"  # a GoReplay flag for config/gor.options
    EXTENSION = "extension"  # ours, not GoReplay's: the replayer's command line only


@dataclass(frozen=True)
class TypedFlag(Generic[T_co]):
    """One flag: its canonical name, value syntax, whether we implement it, and a summary;
    `T_co` is the type its value parses to."""

    name: str
    kind: Kind
    builtin: bool
    summary: str
    parse: Callable[[str], T_co]
    scope: Scope = Scope.OPTION
    # An example value for error messages.
    example: str = ""
    aliases: tuple[str, ...] = ()
    # The value of the flag written alone (`--stats`, `--verbose`); None: a value is required.
    implicit: T_co | None = None

    def value_of(self, text: str | None) -> T_co:
        """The typed value of one occurrence (`text` None when it was written alone)."""
        if text is not None:
            return self.parse(text)
        if self.implicit is None:
            raise ValueError(f"--{self.name} was given without a value")
        return self.implicit


# Any flag, whatever its value's type: what code that only reads names and kinds annotates.
Flag = TypedFlag[object]


def _b(name: str, summary: str) -> TypedFlag[bool]:
    """A boolean flag the built-in replayer implements."""
    return TypedFlag(name, Kind.BOOL, True, summary, parse_bool, implicit=True)


def _v(
    name: str,
    parse: Callable[[str], T_co],
    summary: str,
    example: str,
    *,
    aliases: tuple[str, ...] = (),
) -> TypedFlag[T_co]:
    """A flag with a value that the built-in replayer implements."""
    return TypedFlag(name, Kind.VALUE, True, summary, parse, Scope.OPTION, example, aliases)


def _only(scope: Scope, flag: TypedFlag[T_co]) -> TypedFlag[T_co]:
    """`flag`, allowed only where `scope` says (an input, or our own extension)."""
    return dataclasses.replace(flag, scope=scope)


def _gor(name: str) -> TypedFlag[str]:
    """A GoReplay flag with a value that the built-in replayer does not implement."""
    summary = "needs a real gor binary"
    return TypedFlag(name, Kind.VALUE, False, summary, parse_text, example="VALUE")


def _gor_bool(name: str) -> TypedFlag[bool]:
    """A GoReplay boolean flag that the built-in replayer does not implement."""
    summary = "needs a real gor binary"
    return TypedFlag(name, Kind.BOOL, False, summary, parse_bool, example="VALUE", implicit=True)


# Inputs: the replayer's command line (the wrapper passes --input-http or --input-tcp).
INPUT_HTTP = _only(
    Scope.INPUT,
    _v(
        "input-http",
        parse_listen,
        "accept requests over HTTP on [HOST]:PORT, answer 200 at once, replay them",
        ":28020",
    ),
)
INPUT_TCP = _only(
    Scope.INPUT,
    _v(
        "input-tcp",
        parse_listen,
        "accept GoReplay's TCP framing on [HOST]:PORT (gor --output-tcp, gor:// targets)",
        ":28020",
    ),
)
INPUT_FILE = _only(
    Scope.INPUT,
    _v(
        "input-file",
        parse_input_file,
        "replay a GoReplay capture file, keeping its pace (PATH|200% replays twice as fast)",
        "requests.gor",
    ),
)
INPUT_FILE_LOOP = _b("input-file-loop", "replay the --input-file capture again and again")
INPUT_FILE_MAX_WAIT = _v(
    "input-file-max-wait",
    parse_duration,
    "longest pause between two replayed file requests",
    "1s",
)
# HTTP output.
OUTPUT_HTTP = _v(
    "output-http",
    parse_output_http,
    "replay each request to URL (repeatable); URL|N: at most N/s, URL|N%: a random N %",
    "https://staging.example.com",
)
OUTPUT_HTTP_SKIP_VERIFY = _b(
    "output-http-skip-verify", "do not verify TLS certificates of https outputs"
)
OUTPUT_HTTP_WORKERS = _v(
    "output-http-workers",
    parse_count,
    "most connections (requests in flight) per output, opened as needed (default 256)",
    "10",
)
OUTPUT_HTTP_TIMEOUT = _v(
    "output-http-timeout",
    parse_duration,
    "time limit for connecting, sending and reading each response (default 5s)",
    "5s",
)
OUTPUT_HTTP_QUEUE_LEN = _v(
    "output-http-queue-len",
    parse_count,
    "requests waiting per output; more are dropped and counted (default 1000)",
    "1000",
)
OUTPUT_HTTP_REDIRECTS = _v(
    "output-http-redirects",
    parse_count,
    "follow up to N redirects on the same destination (default 0)",
    "2",
)
OUTPUT_HTTP_STATS = _b(
    "output-http-stats",
    "log per-output stats (queue, sent, dropped, errors, latency) periodically",
)
OUTPUT_HTTP_STATS_MS = _v(
    "output-http-stats-ms",
    parse_count,
    "interval of --output-http-stats lines in milliseconds (default 5000)",
    "5000",
)
OUTPUT_HTTP_DEBUG = _b(
    "output-http-debug", "log each replayed request's outcome (same as --verbose)"
)
HTTP_ORIGINAL_HOST = _b(
    "http-original-host", "keep the request's own Host header instead of the output's host"
)
SPLIT_OUTPUT = _b(
    "split-output", "send each request to one output, round-robin, instead of to every output"
)
# Other outputs.
OUTPUT_STDOUT = _b("output-stdout", "print each request to standard output (GoReplay's framing)")
OUTPUT_NULL = _b("output-null", "accept requests and drop them (for testing)")
OUTPUT_FILE = _v(
    "output-file",
    parse_text,
    "append each request to PATH in GoReplay's file format",
    "requests.gor",
)
OUTPUT_FILE_FLUSH_INTERVAL = _v(
    "output-file-flush-interval",
    parse_duration,
    "how often --output-file is flushed (default 1s)",
    "1s",
)
# Rewrites.
HTTP_SET_HEADER = _v(
    "http-set-header",
    rules.parse_header_value,
    "set a header, replacing an existing one (Host too: then the output's host is not used)",
    "'X-Mirrored: 1'",
    aliases=("output-http-header",),
)
HTTP_REWRITE_HEADER = _v(
    "http-rewrite-header",
    rules.parse_header_rewrite,
    "rewrite a header's value: 'Name: regex,replacement' ($1 for groups)",
    "'Host: (.*).example.com,$1.staging.example.com'",
)
HTTP_REWRITE_URL = _v(
    "http-rewrite-url",
    rules.parse_url_rewrite,
    "rewrite the request target: 'regex:replacement' ($1 for groups)",
    "'/v1/(.*):/v2/$1'",
    aliases=("output-http-rewrite-url",),
)
HTTP_SET_PARAM = _v(
    "http-set-param",
    rules.parse_param,
    "set a query parameter, replacing an existing one: name=value",
    "mirrored=1",
)
# Filters.
HTTP_ALLOW_URL = _v(
    "http-allow-url",
    rules.parse_regex,
    "replay only requests whose target matches the regex",
    "^/api/",
    aliases=("output-http-url-regexp",),
)
HTTP_DISALLOW_URL = _v(
    "http-disallow-url",
    rules.parse_regex,
    "drop requests whose target matches the regex",
    "^/admin",
)
HTTP_ALLOW_HEADER = _v(
    "http-allow-header",
    rules.parse_header_regex,
    "replay only requests that have the header and whose value matches: 'Name: regex'",
    "'Api-Version: ^v1'",
    aliases=("output-http-header-filter",),
)
HTTP_DISALLOW_HEADER = _v(
    "http-disallow-header",
    rules.parse_header_regex,
    "drop requests whose header matches: 'Name: regex'",
    "'User-Agent: Replayed by Gor'",
)
HTTP_ALLOW_METHOD = _v(
    "http-allow-method",
    rules.parse_method,
    "replay only these methods (repeatable)",
    "GET",
    aliases=("output-http-method",),
)
HTTP_HEADER_LIMITER = _v(
    "http-header-limiter",
    rules.parse_hash_limit,
    "replay a consistent N % of requests, chosen by the FNV-1a hash of a header: 'Name: N%'",
    "'User-Id: 25%'",
    aliases=("output-http-header-hash-filter",),
)
HTTP_PARAM_LIMITER = _v(
    "http-param-limiter",
    rules.parse_hash_limit,
    "replay a consistent N % of requests by the FNV-1a hash of a query parameter",
    "'user_id: 25%'",
)
HTTP_BASIC_AUTH_FILTER = _v(
    "http-basic-auth-filter",
    rules.parse_regex,
    "replay only requests whose decoded Basic credentials match the regex",
    "'^customer[0-9]'",
)
# Process.
EXIT_AFTER = _v("exit-after", parse_duration, "stop (and flush) after this long", "30s")
STATS = _b("stats", "log stats lines periodically (as --output-http-stats does)")
VERBOSE = TypedFlag(
    "verbose",
    Kind.OPTIONAL_COUNT,
    True,
    "log each replayed request's outcome",
    parse_verbose,
    example="1",
    implicit=1,
)
DEBUG = _b("debug", "same as --verbose (gor 0.x)")
# Ours: the wrapper passes it on the replayer's command line.
FLUSH_TIMEOUT = _only(
    Scope.EXTENSION,
    _v(
        "flush-timeout",
        parse_duration,
        "on SIGTERM, how long queued requests may take to be sent (default 20s)",
        "20s",
    ),
)

FLAGS: tuple[Flag, ...] = (
    INPUT_HTTP,
    INPUT_TCP,
    INPUT_FILE,
    INPUT_FILE_LOOP,
    INPUT_FILE_MAX_WAIT,
    _v(
        "input-file-read-depth",
        parse_count,
        "accepted for compatibility; the file is streamed",
        "100",
    ),
    OUTPUT_HTTP,
    OUTPUT_HTTP_SKIP_VERIFY,
    OUTPUT_HTTP_WORKERS,
    _v(
        "output-http-workers-min",
        parse_count,
        "accepted for compatibility; the worker count is fixed",
        "1",
    ),
    OUTPUT_HTTP_TIMEOUT,
    OUTPUT_HTTP_QUEUE_LEN,
    OUTPUT_HTTP_REDIRECTS,
    OUTPUT_HTTP_STATS,
    OUTPUT_HTTP_STATS_MS,
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
    OUTPUT_HTTP_DEBUG,
    HTTP_ORIGINAL_HOST,
    SPLIT_OUTPUT,
    OUTPUT_STDOUT,
    OUTPUT_NULL,
    OUTPUT_FILE,
    _b("output-file-append", "accepted; the built-in replayer always appends to the one file"),
    OUTPUT_FILE_FLUSH_INTERVAL,
    HTTP_SET_HEADER,
    HTTP_REWRITE_HEADER,
    HTTP_REWRITE_URL,
    HTTP_SET_PARAM,
    HTTP_ALLOW_URL,
    HTTP_DISALLOW_URL,
    HTTP_ALLOW_HEADER,
    HTTP_DISALLOW_HEADER,
    HTTP_ALLOW_METHOD,
    HTTP_HEADER_LIMITER,
    HTTP_PARAM_LIMITER,
    HTTP_BASIC_AUTH_FILTER,
    EXIT_AFTER,
    STATS,
    VERBOSE,
    DEBUG,
    FLUSH_TIMEOUT,
    # GoReplay flags only a real gor implements.
    _gor("input-raw"),
    _gor_bool("input-raw-track-response"),
    _gor("input-raw-engine"),
    _gor("input-raw-protocol"),
    _gor("input-raw-realip-header"),
    _gor("input-raw-expire"),
    _gor("input-raw-bpf-filter"),
    _gor("input-raw-timestamp-type"),
    _gor_bool("input-raw-override-snaplen"),
    _gor("input-raw-buffer-timeout"),
    _gor("input-raw-buffer-size"),
    _gor_bool("input-raw-promisc"),
    _gor_bool("input-raw-monitor"),
    _gor_bool("input-raw-stats"),
    _gor_bool("input-raw-allow-incomplete"),
    _gor_bool("input-raw-immediate-mode"),
    _gor("input-raw-ignore-interface"),
    _gor("copy-buffer-size"),
    _gor("input-dummy"),
    _gor("output-dummy"),
    _gor_bool("input-tcp-secure"),
    _gor("input-tcp-certificate"),
    _gor("input-tcp-certificate-key"),
    _gor("output-tcp"),
    _gor_bool("output-tcp-secure"),
    _gor_bool("output-tcp-skip-verify"),
    _gor_bool("output-tcp-sticky"),
    _gor("output-tcp-workers"),
    _gor_bool("output-tcp-stats"),
    _gor("output-tcp-response-buffer"),
    _gor_bool("input-file-dry-run"),
    _gor("output-file-size-limit"),
    _gor("output-file-queue-limit"),
    _gor("output-file-max-size-limit"),
    _gor("output-file-buffer"),
    _gor_bool("prettify-http"),
    _gor("middleware"),
    _gor("input-modifier"),
    _gor_bool("output-http-track-response"),
    _gor("output-http-elasticsearch"),
    _gor("output-binary"),
    _gor("output-binary-workers"),
    _gor("output-binary-timeout"),
    _gor_bool("output-binary-track-response"),
    _gor_bool("output-binary-debug"),
    _gor("output-kafka-host"),
    _gor("output-kafka-topic"),
    _gor_bool("output-kafka-json-format"),
    _gor("input-kafka-host"),
    _gor("input-kafka-topic"),
    _gor_bool("input-kafka-json-format"),
    _gor("kafka-tls-ca-cert"),
    _gor("kafka-tls-client-cert"),
    _gor("kafka-tls-client-key"),
    _gor_bool("recognize-tcp-sessions"),
    _gor("http-pprof"),
    _gor("cpuprofile"),
    _gor("memprofile"),
)

BY_NAME: dict[str, Flag] = {flag.name: flag for flag in FLAGS}
ALIASES: dict[str, str] = {alias: flag.name for flag in FLAGS for alias in flag.aliases}
# Names people write that gor never had; a specific hint beats a fuzzy one.
HINTS = {
    "http-header": "--http-set-header",  # GoReplay's own docs use this name
    "output-kafka": "--output-kafka-host",
    "input-kafka": "--input-kafka-host",
    "output-http-header-limiter": "--http-header-limiter",
}
