"""The rules an options file must follow, each written once.

`bin/compile` and the wrapper run `validate_options_file` on config/gor.options; the
built-in replayer runs `require_builtin` and `require_output` on its own command line.
"""

from __future__ import annotations

from traffic_duplicator.options.errors import OptionsError
from traffic_duplicator.options.flags import Scope
from traffic_duplicator.options.model import GorOptions, ParsedFlag

REAL_GOR_FIX = "needs a real gor binary (see vendor/gor/), or remove it"
OUTPUT_FLAGS = ("output-http", "output-stdout", "output-null", "output-file")
_GOR_OUTPUT_FLAGS = ("output-tcp", "output-binary", "output-kafka-host", "output-dummy")


def _needs_real_gor(options: GorOptions, flag: ParsedFlag) -> OptionsError | None:
    """Rule "needs a real gor": a flag the built-in replayer does not implement."""
    if flag.builtin_supported:
        return None
    return options.error(flag, f"{flag.spelling} {REAL_GOR_FIX}")


def _out_of_scope(options: GorOptions, flag: ParsedFlag) -> OptionsError | None:
    """Rule "not in the options file": inputs, and our own extension flags."""
    spec = flag.spec
    if spec.scope is Scope.INPUT or flag.name.startswith("input-"):
        if flag.name.startswith("input-file") and spec.scope is not Scope.INPUT:
            return None
        return options.error(
            flag,
            f"{flag.spelling} does not belong in {options.source}: the wrapper supplies "
            "the input (it replays what the tee proxy copies); remove it",
        )
    if spec.scope is Scope.EXTENSION:
        return options.error(
            flag,
            f"{flag.spelling} is a traffic-duplicator replayer flag, not a GoReplay flag; "
            f"remove it from {options.source}",
        )
    return None


def require_builtin(options: GorOptions) -> None:
    """Every flag must be one the built-in replayer implements."""
    for flag in options.flags:
        error = _needs_real_gor(options, flag)
        if error is not None:
            raise error


def require_output(options: GorOptions, gor_available: bool = False) -> None:
    """Rule "no output": at least one output; gor's own count when a real gor replays."""
    outputs = OUTPUT_FLAGS + (_GOR_OUTPUT_FLAGS if gor_available else ())
    if not any(options.has(name) for name in outputs):
        raise OptionsError(
            f"{options.source}: no output; add e.g. --output-http https://staging.example.com"
        )


def validate_options_file(options: GorOptions, gor_available: bool = False) -> None:
    """The checks `bin/compile` and the wrapper run on config/gor.options.

    Inputs are an error: the wrapper supplies the input (`--input-http` on the replayer
    port), so an input here would either be ignored or capture traffic twice. Our own
    extension flags are an error too, because a real gor would reject them. The first
    mistake in the file's order is reported, then "no output".
    """
    for flag in options.flags:
        error = _out_of_scope(options, flag)
        if error is None and not gor_available:
            error = _needs_real_gor(options, flag)
        if error is not None:
            raise error
    require_output(options, gor_available)
