"""The replayer's configuration: GorOptions turned into small frozen records, one per part."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from traffic_duplicator.options import (
    GoRegex,
    GorOptions,
    HashLimit,
    HeaderRegex,
    HeaderRewrite,
    HeaderValue,
    InputFile,
    Listen,
    OptionsError,
    OutputTarget,
    UrlRewrite,
    flags,
    require_builtin,
    require_output,
)

DEFAULT_WORKERS = 256  # gor scales workers without a limit; we open connections on demand
DEFAULT_TIMEOUT = 5.0
DEFAULT_QUEUE_LEN = 1000  # gor's default
DEFAULT_STATS_MS = 5000
DEFAULT_FLUSH_TIMEOUT = 20.0
DEFAULT_FILE_FLUSH = 1.0
# A request bigger than this is answered but not mirrored (gor's copy-buffer-size is 5 MB).
MAX_REQUEST_BYTES = 5 * 1024 * 1024
# Bytes an output may hold queued, besides the count limit: big bodies must not add up.
QUEUE_BYTES = 16 * 1024 * 1024


class InputKind(enum.Enum):
    HTTP = "http"
    TCP = "tcp"
    FILE = "file"


@dataclass(frozen=True)
class InputConfig:
    kind: InputKind
    listen: Listen | None = None
    file: InputFile | None = None
    loop: bool = False
    max_wait: float = 0.0  # 0: no cap on pauses between file requests


@dataclass(frozen=True)
class HttpOutputConfig:
    target: OutputTarget
    workers: int = DEFAULT_WORKERS
    timeout: float = DEFAULT_TIMEOUT
    queue_len: int = DEFAULT_QUEUE_LEN
    queue_bytes: int = QUEUE_BYTES
    redirects: int = 0
    skip_verify: bool = False
    original_host: bool = False


@dataclass(frozen=True)
class ModifierConfig:
    """GoReplay's request filters and rewrites (gor's http_modifier), in its order."""

    methods: tuple[bytes, ...] = ()
    set_headers: tuple[HeaderValue, ...] = ()
    set_params: tuple[tuple[str, str], ...] = ()
    allow_urls: tuple[GoRegex, ...] = ()
    disallow_urls: tuple[GoRegex, ...] = ()
    allow_headers: tuple[HeaderRegex, ...] = ()
    disallow_headers: tuple[HeaderRegex, ...] = ()
    basic_auth: tuple[GoRegex, ...] = ()
    header_limits: tuple[HashLimit, ...] = ()
    param_limits: tuple[HashLimit, ...] = ()
    url_rewrites: tuple[UrlRewrite, ...] = ()
    header_rewrites: tuple[HeaderRewrite, ...] = ()

    @property
    def active(self) -> bool:
        return any(
            (
                self.methods,
                self.set_headers,
                self.set_params,
                self.allow_urls,
                self.disallow_urls,
                self.allow_headers,
                self.disallow_headers,
                self.basic_auth,
                self.header_limits,
                self.param_limits,
                self.url_rewrites,
                self.header_rewrites,
            )
        )

    @property
    def controls_host(self) -> bool:
        """Whether the user sets or rewrites Host, so outputs must leave it alone."""
        return any(h.name.lower() == "host" for h in self.set_headers) or any(
            r.name.lower() == "host" for r in self.header_rewrites
        )


@dataclass(frozen=True)
class ReplayConfig:
    inputs: tuple[InputConfig, ...]
    http_outputs: tuple[HttpOutputConfig, ...]
    modifier: ModifierConfig
    stdout: bool = False
    null: bool = False
    files: tuple[str, ...] = ()
    file_flush: float = DEFAULT_FILE_FLUSH
    split: bool = False
    stats: bool = False
    stats_interval: float = DEFAULT_STATS_MS / 1000
    verbose: int = 0
    exit_after: float = 0.0
    flush_timeout: float = DEFAULT_FLUSH_TIMEOUT
    max_request_bytes: int = MAX_REQUEST_BYTES


def _inputs(options: GorOptions) -> tuple[InputConfig, ...]:
    """Each input flag in order; --input-file-loop and -max-wait apply to every file."""
    loop = options.has(flags.INPUT_FILE_LOOP.name)
    max_wait = options.value(flags.INPUT_FILE_MAX_WAIT, 0.0)
    inputs: list[InputConfig] = []
    for flag in options.flags:
        if flag.name == flags.INPUT_HTTP.name:
            inputs.append(InputConfig(InputKind.HTTP, listen=flags.INPUT_HTTP.value_of(flag.value)))
        elif flag.name == flags.INPUT_TCP.name:
            inputs.append(InputConfig(InputKind.TCP, listen=flags.INPUT_TCP.value_of(flag.value)))
        elif flag.name == flags.INPUT_FILE.name:
            file = flags.INPUT_FILE.value_of(flag.value)
            inputs.append(InputConfig(InputKind.FILE, file=file, loop=loop, max_wait=max_wait))
    if not inputs:
        raise OptionsError(
            f"{options.source}: no input; add --input-http [HOST]:PORT, "
            "--input-tcp [HOST]:PORT or --input-file PATH"
        )
    return tuple(inputs)


def _http_outputs(options: GorOptions) -> tuple[HttpOutputConfig, ...]:
    """One output per --output-http; the tuning flags apply to all of them, as in gor."""
    timeout = options.value(flags.OUTPUT_HTTP_TIMEOUT, DEFAULT_TIMEOUT)
    return tuple(
        HttpOutputConfig(
            target=target,
            workers=options.value(flags.OUTPUT_HTTP_WORKERS, 0) or DEFAULT_WORKERS,
            timeout=timeout if timeout > 0 else DEFAULT_TIMEOUT,
            queue_len=options.value(flags.OUTPUT_HTTP_QUEUE_LEN, DEFAULT_QUEUE_LEN),
            redirects=options.value(flags.OUTPUT_HTTP_REDIRECTS, 0),
            skip_verify=options.has(flags.OUTPUT_HTTP_SKIP_VERIFY.name),
            original_host=options.has(flags.HTTP_ORIGINAL_HOST.name),
        )
        for target in options.values(flags.OUTPUT_HTTP)
    )


def _verbose(options: GorOptions) -> int:
    """The last --verbose level; --debug and --output-http-debug mean at least 1."""
    verbose = options.value(flags.VERBOSE, 0)
    if options.has(flags.DEBUG.name) or options.has(flags.OUTPUT_HTTP_DEBUG.name):
        verbose = max(verbose, 1)
    return verbose


def build_config(options: GorOptions) -> ReplayConfig:
    """Check what the built-in replayer can do and build its configuration.

    Raises OptionsError for a flag only a real gor implements, no input, or no output.
    """
    require_builtin(options)
    inputs = _inputs(options)
    require_output(options)
    stats_ms = options.value(flags.OUTPUT_HTTP_STATS_MS, DEFAULT_STATS_MS)
    return ReplayConfig(
        inputs=inputs,
        http_outputs=_http_outputs(options),
        modifier=build_modifier_config(options),
        stdout=options.has(flags.OUTPUT_STDOUT.name),
        null=options.has(flags.OUTPUT_NULL.name),
        files=tuple(options.values(flags.OUTPUT_FILE)),
        file_flush=options.value(flags.OUTPUT_FILE_FLUSH_INTERVAL, DEFAULT_FILE_FLUSH),
        split=options.has(flags.SPLIT_OUTPUT.name),
        stats=options.has(flags.STATS.name) or options.has(flags.OUTPUT_HTTP_STATS.name),
        stats_interval=max(stats_ms, 100) / 1000,
        verbose=_verbose(options),
        exit_after=options.value(flags.EXIT_AFTER, 0.0),
        flush_timeout=options.value(flags.FLUSH_TIMEOUT, DEFAULT_FLUSH_TIMEOUT),
    )


def build_modifier_config(options: GorOptions) -> ModifierConfig:
    """The filter and rewrite flags, each list in the order written."""
    return ModifierConfig(
        methods=tuple(options.values(flags.HTTP_ALLOW_METHOD)),
        set_headers=tuple(options.values(flags.HTTP_SET_HEADER)),
        set_params=tuple(options.values(flags.HTTP_SET_PARAM)),
        allow_urls=tuple(options.values(flags.HTTP_ALLOW_URL)),
        disallow_urls=tuple(options.values(flags.HTTP_DISALLOW_URL)),
        allow_headers=tuple(options.values(flags.HTTP_ALLOW_HEADER)),
        disallow_headers=tuple(options.values(flags.HTTP_DISALLOW_HEADER)),
        basic_auth=tuple(options.values(flags.HTTP_BASIC_AUTH_FILTER)),
        header_limits=tuple(options.values(flags.HTTP_HEADER_LIMITER)),
        param_limits=tuple(options.values(flags.HTTP_PARAM_LIMITER)),
        url_rewrites=tuple(options.values(flags.HTTP_REWRITE_URL)),
        header_rewrites=tuple(options.values(flags.HTTP_REWRITE_HEADER)),
    )
