"""Go (RE2) regular expressions and Go replacement templates, for the replayer's rewrites.

gor compiles every filter and rewrite with Go's `regexp` and rewrites with
`Regexp.ReplaceAll`, whose templates are expanded as `Regexp.Expand` documents.
"""

from __future__ import annotations

import re

from traffic_duplicator.options.errors import BadValue

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
