"""What the build prints about an options file, and the notices the wrapper logs at boot."""

from __future__ import annotations

from collections.abc import Iterable

from traffic_duplicator.options.model import GorOptions
from traffic_duplicator.options.urls import parse_output_http


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
