"""Which replayer and proxy run, why, and their exact command lines: one decision.

`choose_engines` is a pure function of the settings (TRAFFIC_DUPLICATOR_* config vars) and
the facts (`EngineFacts`: the gor binary found and what its `--help` said, the Gemfile.lock
that lists em-proxy, what is on the dyno's PATH). The wrapper gathers the facts at boot
(`wrapper.discovery`); the build gathers them from the slug and the config vars and asks
this same function (`python -m traffic_duplicator.wrapper.engines --explain BUILD_DIR
ENV_DIR`, in `wrapper.explain`), so both print the same `at=engine` lines and the build
fails where the dyno would refuse to start.

The pairings, and why:
- em-proxy sends raw HTTP to `-d`, so its replayer listens with `--input-http`: the built-in
  replayer, or a gor of v0.14 or older (the last to have that flag).
- The built-in proxy can send GoReplay's one-way TCP framing (`-d gor://...`), which a modern
  gor reads with `--input-tcp` and so does the built-in replayer. With no responses to read
  and no per-request connection handling it is the cheaper internal hop, so it is used
  whenever the proxy is built in, except in front of an old gor that only has --input-http.
- Every internal hop listens on 127.0.0.1, real gor or built-in: only $PORT faces out.
- Shadow comparison (TRAFFIC_DUPLICATOR_COMPARE=on) needs both built-in engines: only the
  built-in proxy records production's responses and sends them as type 2 messages, and only
  the built-in replayer pairs them with each destination's answer. An `auto` side gives way
  to it; an engine named explicitly, or options that need a real gor, are refused.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from traffic_duplicator.compare.settings import COMPARE
from traffic_duplicator.errors import UserError
from traffic_duplicator.logs import LogValue
from traffic_duplicator.wrapper.ports import LOOPBACK, PortPlan
from traffic_duplicator.wrapper.settings import (
    GOR,
    PROXY,
    REPLAYER,
    EngineSettings,
    ProxyMode,
    ReplayerMode,
)

PROXY_MODULE = "traffic_duplicator.proxy"
REPLAYER_MODULE = "traffic_duplicator.replay"
# gor's Go flag package prints `  -input-http value`; allow the double-dash spelling too.
_INPUT_HTTP_IN_HELP = re.compile(r"(?<![\w-])--?input-http\b")
# gor's usage says "Current Version: 1.3.3" (gor.go prints it before the flags).
_VERSION_IN_HELP = re.compile(r"[Vv]ersion:?\s*v?(\d+(?:\.\d+)+)")


class EngineError(UserError):
    """The engines asked for cannot run here, or cannot run together."""


class ReplayerKind(Enum):
    BUILTIN = "builtin"
    GOR_INPUT_HTTP = "gor --input-http"  # gor v0.14 and older
    GOR_INPUT_TCP = "gor --input-tcp"  # gor v0.15 and newer


class ProxyKind(Enum):
    BUILTIN = "builtin"
    BUNDLED_EM_PROXY = "bundle exec em-proxy"
    EM_PROXY = "em-proxy"


@dataclass(frozen=True)
class GorBinary:
    """A gor executable that was found, and what its `--help` said."""

    path: str
    found_at: str  # which place in the search order, for the log
    help_text: str | None = None  # None when --help could not be run
    problem: str | None = None  # why --help failed

    @property
    def speaks_input_http(self) -> bool:
        return self.help_text is not None and bool(_INPUT_HTTP_IN_HELP.search(self.help_text))

    @property
    def version(self) -> str | None:
        """The version its usage prints ("Current Version: 1.3.3"), if it prints one."""
        found = _VERSION_IN_HELP.search(self.help_text or "")
        return found.group(1) if found else None

    @property
    def described(self) -> str:
        """`the app's bin/gor /app/bin/gor (gor 1.3.3)`, for reasons and build output."""
        return f"{self.found_at} {self.path} (gor {self.version or 'version unknown'})"


@dataclass(frozen=True)
class EngineFacts:
    """What is installed: everything `choose_engines` needs, gathered by `discover_engines`."""

    gor: GorBinary | None = None
    gor_searched: tuple[str, ...] = ()
    gor_setting_problem: str | None = None  # TRAFFIC_DUPLICATOR_GOR names no executable
    lockfile_lists_em_proxy: str | None = None  # the Gemfile.lock that lists em-proxy
    bundle_on_path: bool = False
    em_proxy_on_path: bool = False
    real_gor_flags: tuple[str, ...] = ()  # option spellings only a real gor implements


@dataclass(frozen=True)
class EnginePlan:
    replayer: ReplayerKind
    replayer_reason: str
    proxy: ProxyKind
    proxy_reason: str
    gor_path: str | None = None
    compare: bool = False  # the proxy sends production's responses, the replayer compares

    @property
    def gor_framing(self) -> bool:
        """Whether the proxy sends GoReplay framing (`gor://`) rather than raw HTTP."""
        return self.proxy is ProxyKind.BUILTIN and self.replayer is not ReplayerKind.GOR_INPUT_HTTP

    @property
    def uses_gor(self) -> bool:
        return self.replayer is not ReplayerKind.BUILTIN


def _usable_gor(facts: EngineFacts) -> tuple[GorBinary | None, str]:
    """The gor binary to use, or None and the reason there is none."""
    gor = facts.gor
    if gor is None:
        return None, f"no gor binary found (looked at {', '.join(facts.gor_searched)})"
    if gor.help_text is None:
        return None, f"{gor.found_at} {gor.path} did not answer --help ({gor.problem})"
    return gor, ""


def _gor_kind(gor: GorBinary) -> tuple[ReplayerKind, str]:
    if gor.speaks_input_http:
        return ReplayerKind.GOR_INPUT_HTTP, f"{gor.described} lists --input-http (v0.14 or older)"
    return ReplayerKind.GOR_INPUT_TCP, f"{gor.described} has no --input-http (v0.15 or newer)"


def _choose_replayer(
    settings: EngineSettings, facts: EngineFacts
) -> tuple[ReplayerKind, str, str | None]:
    if settings.replayer is ReplayerMode.BUILTIN:
        return ReplayerKind.BUILTIN, f"{REPLAYER}=builtin", None
    if facts.gor_setting_problem:
        raise EngineError(facts.gor_setting_problem)
    gor, missing = _usable_gor(facts)
    if gor is not None:
        kind, reason = _gor_kind(gor)
        return kind, reason, gor.path
    if settings.replayer is ReplayerMode.GOR:
        raise EngineError(
            f"{REPLAYER}=gor but {missing}; put gor there, set {GOR}, or set {REPLAYER}=auto"
        )
    return ReplayerKind.BUILTIN, missing, None


def _choose_proxy(settings: EngineSettings, facts: EngineFacts) -> tuple[ProxyKind, str]:
    lockfile = facts.lockfile_lists_em_proxy
    if settings.proxy is ProxyMode.BUILTIN:
        return ProxyKind.BUILTIN, f"{PROXY}=builtin"
    if lockfile and facts.bundle_on_path:
        return ProxyKind.BUNDLED_EM_PROXY, f"{lockfile} lists em-proxy"
    if settings.proxy is ProxyMode.EM_PROXY:
        if facts.em_proxy_on_path:
            return ProxyKind.EM_PROXY, f"{PROXY}=em-proxy and em-proxy is on PATH"
        where = (
            f"{lockfile} lists em-proxy but bundle is not on PATH"
            if lockfile
            else ("em-proxy is neither in Gemfile.lock nor on PATH")
        )
        raise EngineError(
            f"{PROXY}=em-proxy but {where}; add gem 'em-proxy' to the Gemfile "
            f"or set {PROXY}=builtin"
        )
    if lockfile:
        return ProxyKind.BUILTIN, f"{lockfile} lists em-proxy but bundle is not on PATH"
    return ProxyKind.BUILTIN, "the app does not bundle em-proxy (not in Gemfile.lock)"


def _compare_plan(settings: EngineSettings, facts: EngineFacts) -> EnginePlan:
    """Both built-in engines, as comparison needs; an explicit other choice is refused."""
    needs = f"{COMPARE}=on needs the built-in proxy and replayer"
    off = f"or unset {COMPARE}"
    if settings.replayer is ReplayerMode.GOR:
        raise EngineError(f"{needs}, but {REPLAYER}=gor; set {REPLAYER}=builtin (or auto), {off}")
    if settings.proxy is ProxyMode.EM_PROXY:
        raise EngineError(f"{needs}, but {PROXY}=em-proxy; set {PROXY}=builtin (or auto), {off}")
    if facts.real_gor_flags:
        raise EngineError(
            f"{needs}, but the options need a real gor ({', '.join(facts.real_gor_flags)}); "
            f"remove them, {off}"
        )
    replayer_reason = f"{REPLAYER}=builtin"
    if settings.replayer is ReplayerMode.AUTO:
        gor, _ = _usable_gor(facts)
        unused = f" ({gor.described} is not used)" if gor is not None else ""
        replayer_reason = f"{COMPARE}=on needs the built-in replayer{unused}"
    proxy_reason = f"{PROXY}=builtin"
    if settings.proxy is ProxyMode.AUTO:
        lockfile = facts.lockfile_lists_em_proxy
        unused = f" ({lockfile} lists em-proxy; it is not used)" if lockfile else ""
        proxy_reason = f"{COMPARE}=on needs the built-in proxy{unused}"
    return EnginePlan(
        ReplayerKind.BUILTIN, replayer_reason, ProxyKind.BUILTIN, proxy_reason, compare=True
    )


def choose_engines(settings: EngineSettings, facts: EngineFacts) -> EnginePlan:
    """Pick both engines from the settings and the facts; each choice carries its reason."""
    if settings.compare:
        return _compare_plan(settings, facts)
    replayer, replayer_reason, gor_path = _choose_replayer(settings, facts)
    proxy, proxy_reason = _choose_proxy(settings, facts)
    if replayer is ReplayerKind.GOR_INPUT_TCP and proxy is not ProxyKind.BUILTIN:
        # em-proxy only sends raw HTTP, which a modern gor can no longer take in.
        # An "auto" side gives way to an explicit one; with both on auto, em-proxy (the app's
        # own choice) stays unless the options need a real gor.
        conflict = f"em-proxy can only feed a replayer with --input-http, and {replayer_reason}"
        replayer_explicit = settings.replayer is ReplayerMode.GOR
        proxy_explicit = settings.proxy is ProxyMode.EM_PROXY
        needs_gor = bool(facts.real_gor_flags)
        if proxy_explicit and (replayer_explicit or needs_gor):
            because = (
                f"{REPLAYER}=gor"
                if replayer_explicit
                else (f"the options need a real gor ({', '.join(facts.real_gor_flags)})")
            )
            raise EngineError(
                f"{conflict}; {because}; set {PROXY}=builtin, or use gor v0.14 or older"
            )
        if replayer_explicit or needs_gor:
            proxy = ProxyKind.BUILTIN
            proxy_reason = f"{conflict}; the built-in proxy feeds it GoReplay framing instead"
        else:
            replayer, gor_path = ReplayerKind.BUILTIN, None
            replayer_reason = f"{conflict}; the built-in replayer takes em-proxy's HTTP instead"
    return EnginePlan(replayer, replayer_reason, proxy, proxy_reason, gor_path)


HOP_REASONS = {
    True: "one-way GoReplay framing: no responses to read, no per-request connections",
    False: "the replayer reads raw HTTP (--input-http)",
}


COMPARE_HOP_REASON = "production's responses follow each request as type 2 messages"


def decision_events(plan: EnginePlan) -> tuple[dict[str, LogValue], ...]:
    """The `at=engine` lines: logged by the wrapper at boot, printed by the build as well."""
    hop: dict[str, LogValue] = {
        "at": "engine", "process": "hop", "framing": "gor" if plan.gor_framing else "http",
    }  # fmt: skip
    reason = HOP_REASONS[plan.gor_framing]
    if plan.compare:
        hop["compare"] = "on"
        reason = f"{reason}; {COMPARE_HOP_REASON}"
    hop["reason"] = reason
    return (
        {"at": "engine", "process": "replayer", "engine": plan.replayer.value,
         "reason": plan.replayer_reason},
        {"at": "engine", "process": "proxy", "engine": plan.proxy.value,
         "reason": plan.proxy_reason},
        hop,
    )  # fmt: skip


@dataclass(frozen=True)
class EngineCommands:
    replayer: tuple[str, ...]
    proxy: tuple[str, ...]


@dataclass(frozen=True)
class EngineTuning:
    """What the engines' command lines carry besides the plan: their shutdown stages'
    timeouts (seconds) and, with comparison on, the body bytes the proxy keeps."""

    drain_timeout: float
    flush_timeout: float
    compare_body_limit: int | None = None


def _seconds(value: float) -> str:
    return f"{value:g}"


def engine_commands(
    plan: EnginePlan,
    ports: PortPlan,
    options_argv: Sequence[str],
    python: str,
    tuning: EngineTuning,
) -> EngineCommands:
    """The exact argv of each engine, as the design writes them for em-proxy and gor.

    The replayer listens on 127.0.0.1 whatever it is: a bare `:PORT` would make gor listen on
    every interface, and only the proxy's $PORT may face the outside. With comparison on,
    the proxy gets `--compare` (and `--compare-body-limit BYTES` when given); the replayer
    reads the TRAFFIC_DUPLICATOR_COMPARE_* variables from its environment.
    """
    internal = f"{LOOPBACK}:{ports.replayer}"
    if plan.replayer is ReplayerKind.BUILTIN:
        input_flag = "--input-tcp" if plan.gor_framing else "--input-http"
        replayer: tuple[str, ...] = (
            python, "-m", REPLAYER_MODULE, input_flag, internal,
            "--flush-timeout", f"{_seconds(tuning.flush_timeout)}s", *options_argv,
        )  # fmt: skip
    else:
        assert plan.gor_path is not None
        input_flag = (
            "--input-http" if plan.replayer is ReplayerKind.GOR_INPUT_HTTP else "--input-tcp"
        )
        replayer = (plan.gor_path, input_flag, internal, *options_argv)
    em_proxy_args = ("-l", str(ports.public), "-r", f"{LOOPBACK}:{ports.app}", "-d", internal)
    if plan.proxy is ProxyKind.BUNDLED_EM_PROXY:
        proxy: tuple[str, ...] = ("bundle", "exec", "em-proxy", *em_proxy_args)
    elif plan.proxy is ProxyKind.EM_PROXY:
        proxy = ("em-proxy", *em_proxy_args)
    else:
        target = f"gor://{internal}" if plan.gor_framing else internal
        proxy = (
            python, "-m", PROXY_MODULE, "-l", str(ports.public), "-r", f"{LOOPBACK}:{ports.app}",
            "-d", target, "--drain-timeout", _seconds(tuning.drain_timeout),
        )  # fmt: skip
        if plan.compare:
            proxy += ("--compare",)
            if tuning.compare_body_limit is not None:
                proxy += ("--compare-body-limit", str(tuning.compare_body_limit))
    return EngineCommands(replayer, proxy)


if __name__ == "__main__":
    # `python -m traffic_duplicator.wrapper.engines --explain BUILD_DIR ENV_DIR`: the build's
    # way of asking this module (see wrapper.explain).
    from traffic_duplicator.wrapper.explain import main

    sys.exit(main())
