"""Go regular expressions at run time: matching, `ReplaceAll` and template expansion.

gor matches every filter with Go's `Regexp.Match` and rewrites with `Regexp.ReplaceAll`
(http_modifier.go), whose templates are expanded as `Regexp.Expand` documents
(pkg.go.dev/regexp#Regexp.Expand). Three behaviours differ from Python's `re.sub`:

- empty matches: Go ignores an empty match right after the previous match ("Empty matches
  abutting a preceding match are ignored"), Python (since 3.7) replaces it, so `(.*)`
  rewrites `val` to `x1valx1` where gor writes `x1val`;
- templates: `$1`, `${1}`, `$name`, `${name}`, `$$`; a name is as long as possible, so
  `$1x` is the group named `1x`; an unknown or unmatched group expands to nothing;
- text: Go matches UTF-8 bytes rune by rune, an invalid byte counting as one rune. We
  decode with `surrogateescape`, which keeps each invalid byte as one character and gives
  the same bytes back.

The pattern syntax is translated by re2.py.
"""

from __future__ import annotations

import functools
import re

from traffic_duplicator.options.errors import BadValue
from traffic_duplicator.options.re2 import Re2Error, Re2Unsupported, translate

_TEXT = "utf-8"
_KEEP_BYTES = "surrogateescape"


def _decode(data: bytes) -> str:
    return data.decode(_TEXT, _KEEP_BYTES)


def _encode(text: str) -> bytes:
    return text.encode(_TEXT, _KEEP_BYTES)


class GoRegex:
    """A compiled Go (RE2) regular expression, used on raw request bytes."""

    __slots__ = ("_names", "_regex", "pattern")

    def __init__(self, pattern: str) -> None:
        """Compile `pattern` as Go would; BadValue names what Go's RE2 refuses and why."""
        try:
            translation = translate(pattern)
        except Re2Unsupported as exc:
            raise BadValue(f"{pattern!r}: {exc}") from None
        except Re2Error as exc:
            raise BadValue(f"{pattern!r} is not a valid regular expression ({exc})") from None
        try:
            self._regex = re.compile(translation.pattern)
        except (re.error, RecursionError, OverflowError) as exc:
            raise BadValue(f"{pattern!r} is not a valid regular expression ({exc})") from None
        self._names = translation.names
        self.pattern = pattern

    def __repr__(self) -> str:
        return f"GoRegex({self.pattern!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoRegex) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def search(self, subject: bytes) -> bool:
        """Go's `Regexp.Match`: whether the pattern matches anywhere in `subject`."""
        return self._regex.search(_decode(subject)) is not None

    def replace_all(self, subject: bytes, template: bytes) -> bytes:
        """Go's `Regexp.ReplaceAll`: each match replaced by the expanded template."""
        text = _decode(subject)
        pieces = _template(_decode(template))
        out: list[str] = []
        last_end = 0  # end of the previous match: text up to here is already in `out`
        position = 0  # where the next search starts
        while position <= len(text):
            match = self._regex.search(text, position)
            if match is None:
                break
            start, end = match.span()
            out.append(text[last_end:start])
            # Go's rule: no replacement for an empty match right after the previous match.
            if end > last_end or start == 0:
                out.append(self._expand(pieces, match))
            last_end = end
            # Always advance, by at least one character after an empty match.
            position = end if end > position else position + 1
        out.append(text[last_end:])
        return _encode("".join(out))

    def expand(self, template: bytes, match: re.Match[str]) -> bytes:
        """Go's `Regexp.Expand` of `template` for one match of this regex."""
        return _encode(self._expand(_template(_decode(template)), match))

    def _expand(self, pieces: tuple[str | _Ref, ...], match: re.Match[str]) -> str:
        return "".join(
            piece if isinstance(piece, str) else self._group(piece, match) for piece in pieces
        )

    def _group(self, ref: _Ref, match: re.Match[str]) -> str:
        """The text of the group a reference names; empty if none matched (as in Go)."""
        if ref.number >= 0:
            if ref.number <= len(self._names) - 1:
                return match.group(ref.number) or ""
            return ""
        for index, name in enumerate(self._names):
            if name == ref.name and match.group(index) is not None:
                return match.group(index)
        return ""


class _Ref:
    """A `$name` or `${name}` in a template; `number` is -1 unless the name is a number."""

    __slots__ = ("name", "number")

    def __init__(self, name: str) -> None:
        self.name = name
        self.number = _number(name)


def _number(name: str) -> int:
    """Go's reading of a group number: ASCII digits, no leading zero, not too long."""
    number = 0
    for char in name:
        if not ("0" <= char <= "9") or number >= 100_000_000:
            return -1
        number = number * 10 + ord(char) - ord("0")
    if name.startswith("0") and len(name) > 1:
        return -1
    return number


def _name_end(template: str, start: int) -> int:
    """Where a group name starting at `start` ends: letters, digits and `_` (Unicode)."""
    end = start
    while end < len(template) and (
        template[end].isalpha() or template[end].isdecimal() or template[end] == "_"
    ):
        end += 1
    return end


def _reference(template: str, start: int) -> tuple[_Ref, int] | None:
    """The reference after a `$` at `start - 1`, and where it ends; None if malformed."""
    brace = template.startswith("{", start)
    name_start = start + brace
    end = _name_end(template, name_start)
    if end == name_start:
        return None
    if brace:
        if not template.startswith("}", end):
            return None
        return _Ref(template[name_start:end]), end + 1
    return _Ref(template[name_start:end]), end


@functools.lru_cache(maxsize=256)
def _template(template: str) -> tuple[str | _Ref, ...]:
    """A template split into literal text and references; a malformed `$` stays literal."""
    pieces: list[str | _Ref] = []
    literal: list[str] = []
    position = 0
    while (dollar := template.find("$", position)) >= 0:
        literal.append(template[position:dollar])
        position = dollar + 1
        if template.startswith("$", position):
            literal.append("$")
            position += 1
            continue
        found = _reference(template, position)
        if found is None:
            literal.append("$")
            continue
        pieces.append("".join(literal))
        literal = []
        ref, position = found
        pieces.append(ref)
    literal.append(template[position:])
    pieces.append("".join(literal))
    return tuple(piece for piece in pieces if piece != "")


def compile_go_regex(pattern: str) -> GoRegex:
    """Compile a Go (RE2) regular expression for matching raw request bytes."""
    return GoRegex(pattern)


def go_replace_all(regex: GoRegex, template: bytes, subject: bytes) -> bytes:
    """Go's Regexp.ReplaceAll: every match replaced by the expanded template."""
    return regex.replace_all(subject, template)
