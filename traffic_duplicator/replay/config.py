"""The replayer's configuration: GorOptions turned into small frozen records, one per part."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from traffic_duplicator.options import (
    REAL_GOR_FIX,
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
    parse_verbose,
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
    allow_urls: tuple[re.Pattern[bytes], ...] = ()
    disallow_urls: tuple[re.Pattern[bytes], ...] = ()
    allow_headers: tuple[HeaderRegex, ...] = ()
    disallow_headers: tuple[HeaderRegex, ...] = ()
    basic_auth: tuple[re.Pattern[bytes], ...] = ()
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


def _values(options: GorOptions, name: str) -> list[object]:
    return [flag.parsed() for flag in options.all(name)]


def _number(options: GorOptions, name: str, default: float) -> float:
    """The last value of a count or duration flag (the last one wins, as in gor)."""
    flag = options.last(name)
    if flag is None:
        return default
    value = flag.parsed()
    assert isinstance(value, (int, float))
    return value


def build_config(options: GorOptions) -> ReplayConfig:
    """Check what the built-in replayer can do and build its configuration."""
    for flag in options.flags:
        if not flag.builtin_supported:
            raise options.error(flag, f"{flag.spelling} {REAL_GOR_FIX}")

    inputs: list[InputConfig] = []
    loop = options.has("input-file-loop")
    max_wait = _number(options, "input-file-max-wait", 0.0)
    for flag in options.flags:
        value = flag.parsed()
        if flag.name == "input-http":
            assert isinstance(value, Listen)
            inputs.append(InputConfig(InputKind.HTTP, listen=value))
        elif flag.name == "input-tcp":
            assert isinstance(value, Listen)
            inputs.append(InputConfig(InputKind.TCP, listen=value))
        elif flag.name == "input-file":
            assert isinstance(value, InputFile)
            inputs.append(InputConfig(InputKind.FILE, file=value, loop=loop, max_wait=max_wait))
    if not inputs:
        raise OptionsError(
            f"{options.source}: no input; add --input-http [HOST]:PORT, "
            "--input-tcp [HOST]:PORT or --input-file PATH"
        )

    workers = int(_number(options, "output-http-workers", 0)) or DEFAULT_WORKERS
    queue_len = int(_number(options, "output-http-queue-len", DEFAULT_QUEUE_LEN))
    timeout = _number(options, "output-http-timeout", DEFAULT_TIMEOUT)
    redirects = int(_number(options, "output-http-redirects", 0))
    http_outputs = tuple(
        HttpOutputConfig(
            target=target,
            workers=workers,
            timeout=timeout if timeout > 0 else DEFAULT_TIMEOUT,
            queue_len=queue_len,
            redirects=redirects,
            skip_verify=options.has("output-http-skip-verify"),
            original_host=options.has("http-original-host"),
        )
        for target in _values(options, "output-http")
        if isinstance(target, OutputTarget)
    )
    files = tuple(str(v) for v in _values(options, "output-file"))
    stdout = options.has("output-stdout")
    null = options.has("output-null")
    if not (http_outputs or files or stdout or null):
        raise OptionsError(
            f"{options.source}: no output; add e.g. --output-http https://staging.example.com"
        )

    verbose = 0
    for flag in options.all("verbose"):
        verbose = 1 if flag.value is None else parse_verbose(flag.value)
    if options.has("debug") or options.has("output-http-debug"):
        verbose = max(verbose, 1)
    stats_ms = _number(options, "output-http-stats-ms", DEFAULT_STATS_MS)

    return ReplayConfig(
        inputs=tuple(inputs),
        http_outputs=http_outputs,
        modifier=build_modifier_config(options),
        stdout=stdout,
        null=null,
        files=files,
        file_flush=_number(options, "output-file-flush-interval", DEFAULT_FILE_FLUSH),
        split=options.has("split-output"),
        stats=options.has("stats") or options.has("output-http-stats"),
        stats_interval=max(stats_ms, 100) / 1000,
        verbose=verbose,
        exit_after=_number(options, "exit-after", 0.0),
        flush_timeout=_number(options, "flush-timeout", DEFAULT_FLUSH_TIMEOUT),
    )


def build_modifier_config(options: GorOptions) -> ModifierConfig:
    def typed(name: str, kind: type) -> tuple:  # type: ignore[type-arg]
        values = _values(options, name)
        assert all(isinstance(v, kind) for v in values)
        return tuple(values)

    return ModifierConfig(
        methods=typed("http-allow-method", bytes),
        set_headers=typed("http-set-header", HeaderValue),
        set_params=typed("http-set-param", tuple),
        allow_urls=typed("http-allow-url", re.Pattern),
        disallow_urls=typed("http-disallow-url", re.Pattern),
        allow_headers=typed("http-allow-header", HeaderRegex),
        disallow_headers=typed("http-disallow-header", HeaderRegex),
        basic_auth=typed("http-basic-auth-filter", re.Pattern),
        header_limits=typed("http-header-limiter", HashLimit),
        param_limits=typed("http-param-limiter", HashLimit),
        url_rewrites=typed("http-rewrite-url", UrlRewrite),
        header_rewrites=typed("http-rewrite-header", HeaderRewrite),
    )
