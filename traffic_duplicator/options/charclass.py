"""Character classes as code point ranges, and their Python `re` spelling.

Go builds each class (`[a-z]`, `\\d`, `[[:alpha:]]`, `\\pL`) as a set of ranges, negating and
folding case on the set; we do the same and write the set out as one Python class of
escaped ranges, so no Python class syntax (nested sets, `&&`, `--`) can creep in.
"""

from __future__ import annotations

import functools
import sys
import unicodedata

MAX_RUNE = sys.maxunicode

Ranges = tuple[tuple[int, int], ...]

POSIX_CLASSES = {
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "ascii": ((0x00, 0x7F),),
    "blank": ((0x09, 0x09), (0x20, 0x20)),
    "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "digit": ((0x30, 0x39),),
    "graph": ((0x21, 0x7E),),
    "lower": ((0x61, 0x7A),),
    "print": ((0x20, 0x7E),),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "space": ((0x09, 0x0D), (0x20, 0x20)),
    "upper": ((0x41, 0x5A),),
    "word": ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)),
    "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
}
# Go's Perl classes are ASCII-only (regexp/syntax: "\d digits (== [0-9])", ...).
PERL_CLASSES = {
    "d": POSIX_CLASSES["digit"],
    "s": ((0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)),  # [\t\n\f\r ]: no \v, unlike [[:space:]]
    "w": POSIX_CLASSES["word"],
}
# Go's general category names (unicode.Categories).
CATEGORIES = frozenset(
    {
        *("C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me"),
        *("Mn", "N", "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps"),
        *("S", "Sc", "Sk", "Sm", "So", "Z", "Zl", "Zp", "Zs"),
    }
)


def negate(ranges: Ranges) -> Ranges:
    """Every code point not in `ranges`."""
    result: list[tuple[int, int]] = []
    start = 0
    for lo, hi in merge(ranges):
        if lo > start:
            result.append((start, lo - 1))
        start = hi + 1
    if start <= MAX_RUNE:
        result.append((start, MAX_RUNE))
    return tuple(result)


def merge(ranges: Ranges) -> Ranges:
    """The same code points as sorted, disjoint, non-adjacent ranges."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)


@functools.cache
def category(name: str) -> Ranges:
    """Code points of a Unicode general category as Go's tables group them (C has no Cn)."""
    ranges: list[tuple[int, int]] = []
    for code in range(MAX_RUNE + 1):
        found = unicodedata.category(chr(code))
        if found == name or (len(name) == 1 and found[0] == name and found != "Cn"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return tuple(ranges)


def char_pattern(code: int) -> str:
    """One code point, written so that it is literal inside a Python character class."""
    if code < 0x80:
        char = chr(code)
        if char.isalnum():
            return char
        return f"\\{char}" if 0x20 < code < 0x7F else f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def class_pattern(ranges: Ranges, negated: bool) -> str:
    """A Python character class for `ranges` (or for every code point not in them)."""
    merged = merge(ranges)
    if not merged:  # matches nothing (e.g. [^\x00-\x{10FFFF}])
        negated, merged = not negated, ((0, MAX_RUNE),)
    body = "".join(
        char_pattern(lo) if lo == hi else f"{char_pattern(lo)}-{char_pattern(hi)}"
        for lo, hi in merged
    )
    return f"[{'^' if negated else ''}{body}]"
