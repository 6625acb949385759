"""Go's regular expression syntax (RE2), translated to an equivalent Python `re` pattern.

gor compiles every filter and rewrite with Go's `regexp` (syntax: pkg.go.dev/regexp/syntax).
Python's `re` reads most of it the same way, but not all, and options files written for gor
must mean here what they meant there. What this translation takes care of:

- Go's flags `(?i)`, `(?m)`, `(?s)`, `(?U)` anywhere in a pattern, lasting to the end of the
  enclosing group (Python 3.11 refuses global flags after the start); each atom is emitted
  with the flags in force where it stands;
- `$` without `(?m)` is Go's end of text (`\\z`), not Python's "before a final newline";
  `\\z`; `\\Q...\\E`; POSIX classes `[[:alpha:]]` and `[[:^alpha:]]`; Unicode general
  categories `\\pL`, `\\p{Lu}`, `\\PN`, `\\p{^L}`; octal `\\123` and hex `\\x{10FFFF}` escapes;
- `\\d`, `\\s`, `\\w` and `\\b` are ASCII-only in Go, Unicode in Python's str patterns;
- `a{,2}` and `a{01}` are literal text in Go, repetitions in Python;
- named groups `(?P<name>re)` and `(?<name>re)` with Go's names (`1x` is a name); they are
  emitted as plain groups, and `names` maps each group number to its Go name;
- what Go refuses is refused, with Go's own reason: backreferences, lookarounds, atomic
  groups, comments, `\\C`, `\\Z`, nested repetitions (`a**`), counts over 1000.

Unicode scripts (`\\p{Greek}`) need tables the standard library does not have: they are
refused with a hint. Subjects are matched as text decoded from UTF-8 with each invalid
byte kept as one character, as Go matches bytes (see goregex.py).
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

from traffic_duplicator.options.charclass import (
    CATEGORIES,
    MAX_RUNE,
    PERL_CLASSES,
    POSIX_CLASSES,
    Ranges,
    category,
    char_pattern,
    class_pattern,
    negate,
)

MAX_REPEAT = 1000  # Go's limit on {n,m} counts
MAX_NESTING = 200  # Go allows 1000; our recursive descent stops well before Python's stack


class Re2Error(ValueError):
    """A pattern Go's regexp would not compile; the message is Go's reason."""


class Re2Unsupported(Re2Error):
    """A pattern Go compiles but the built-in replayer cannot (Unicode scripts)."""


class Flag(enum.IntFlag):
    FOLD = 1  # i: case-insensitive
    MULTILINE = 2  # m: ^ and $ also at line boundaries
    DOTALL = 4  # s: . also matches \n
    UNGREEDY = 8  # U: x* is lazy and x*? greedy


_FLAG_LETTERS = {"i": Flag.FOLD, "m": Flag.MULTILINE, "s": Flag.DOTALL, "U": Flag.UNGREEDY}


_SIMPLE_ESCAPES = {"a": 0x07, "f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09, "v": 0x0B}
_REFUSED_GROUPS = (
    ("(?<=", "a lookbehind"),
    ("(?<!", "a lookbehind"),
    ("(?=", "a lookahead"),
    ("(?!", "a lookahead"),
    ("(?P=", "a backreference"),
    ("(?P>", "a recursion"),
    ("(?>", "an atomic group"),
    ("(?#", "a comment group"),
)
# `.`, `^` and `$`: their Python form with and without the flag that changes them.
_SPECIAL = {
    ".": (Flag.DOTALL, "(?s:.)", "."),
    "^": (Flag.MULTILINE, "(?m:^)", "(?:^)"),
    "$": (Flag.MULTILINE, "(?m:$)", "(?:\\Z)"),  # without (?m), Go's $ is \z
}
# Go's \\A, \\z and ASCII word boundaries. Python's \\B never matches in an empty text, Go's
# does: it is written out as "both sides word characters, or neither".
_ASSERTIONS = {
    "A": "(?:\\A)",
    "z": "(?:\\Z)",
    "b": "(?a:\\b)",
    "B": "(?a:(?<=\\w)(?=\\w)|(?<!\\w)(?!\\w))",
}
_NAME = re.compile(r"[A-Za-z0-9_]+")
_REPEAT = re.compile(r"\{([0-9]+)(,([0-9]*))?\}")


@dataclass(frozen=True)
class Translation:
    """A Python pattern equivalent to a Go one; `names[i]` is group i's Go name, or ""."""

    pattern: str
    names: tuple[str, ...]


class _Parser:
    """A recursive-descent reader of Go syntax that writes the Python pattern as it goes.

    `pos` is the next character of `source`; `flags` are the flags in force there (saved
    when a group opens, restored when it closes, as Go's parser does).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0
        self.flags = Flag(0)
        self.names: list[str] = [""]
        self.depth = 0

    # -- helpers ---------------------------------------------------------------------------

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.source[index] if index < len(self.source) else ""

    def at(self, prefix: str) -> bool:
        return self.source.startswith(prefix, self.pos)

    def error(self, reason: str, text: str) -> Re2Error:
        return Re2Error(f"{reason}: `{text}`")

    # -- structure -------------------------------------------------------------------------

    def translate(self) -> str:
        pattern = self.alternation()
        if self.pos < len(self.source):  # only a stray ")" stops an alternation early
            raise self.error("unexpected )", self.source)
        return pattern

    def alternation(self) -> str:
        branches = [self.branch()]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.branch())
        return "|".join(branches)

    def branch(self) -> str:
        parts: list[str] = []
        repeated = ""  # the previous repetition operator, for Go's "nested repetition" error
        while self.pos < len(self.source) and self.peek() not in "|)":
            start = self.pos
            suffix = self.repetition()
            if suffix is not None:
                op = self.source[start : self.pos]
                if not parts:
                    raise self.error("missing argument to repetition operator", op)
                if repeated:
                    raise self.error("invalid nested repetition operator", repeated + op)
                parts[-1] = f"(?:{parts[-1]}){suffix}"
                repeated = op
                continue
            parts.extend(self.atom())
            repeated = ""
        return "".join(parts)

    def repetition(self) -> str | None:
        """`*`, `+`, `?` or a valid `{n,m}`, with its `?`, as Python writes it; else None."""
        char = self.peek()
        if char in ("*", "+", "?"):
            self.pos += 1
            op = char
        elif char == "{":
            op_or_none = self.counted()
            if op_or_none is None:
                return None
            op = op_or_none
        else:
            return None
        lazy = self.peek() == "?"
        if lazy:
            self.pos += 1
        if self.flags & Flag.UNGREEDY:
            lazy = not lazy
        return op + ("?" if lazy else "")

    def counted(self) -> str | None:
        """`{n}`, `{n,}` or `{n,m}`; None where Go reads the brace as a literal."""
        match = _REPEAT.match(self.source, self.pos)
        if match is None:
            return None
        numbers = [match.group(1)] + ([match.group(3)] if match.group(3) else [])
        if any(len(n) > 1 and n.startswith("0") for n in numbers):
            return None  # Go's parser takes no leading zeros: the text is literal
        low = int(match.group(1))
        high = low if match.group(2) is None else int(match.group(3) or -1)
        if low > MAX_REPEAT or high > MAX_REPEAT or (high >= 0 and low > high):
            raise self.error("invalid repeat count", match.group(0))
        self.pos = match.end()
        return match.group(0)

    def atom(self) -> list[str]:
        """The next operands as Python fragments, each one quantifiable.

        Usually one; none for a flag group `(?i)`, one per character for `\\Q...\\E`.
        """
        char = self.peek()
        reader = {"(": self.group, "[": self.char_class, "\\": self.escape}.get(char)
        if reader is not None:
            return reader()
        self.pos += 1
        if char in _SPECIAL:
            flag, when_set, otherwise = _SPECIAL[char]
            return [when_set if self.flags & flag else otherwise]
        return [self.literal(ord(char))]

    def folded(self, fragment: str) -> str:
        """A class, case-insensitive under (?i) (Go folds the class's ranges)."""
        return f"(?i:{fragment})" if self.flags & Flag.FOLD else fragment

    def literal(self, code: int) -> str:
        char = chr(code)
        text = re.escape(char) if code >= 0x20 else char_pattern(code)
        if self.flags & Flag.FOLD and (char.lower() != char or char.upper() != char):
            return f"(?i:{text})"
        return text

    # -- groups ----------------------------------------------------------------------------

    def group(self) -> list[str]:
        """`(re)`, `(?P<name>re)`, `(?:re)`, `(?flags:re)`, or `(?flags)` (None: no text)."""
        start = self.pos
        for prefix, what in _REFUSED_GROUPS:
            if self.at(prefix):
                raise Re2Error(f"{what} `{prefix}` is not supported by Go's RE2, which gor uses")
        capture, name, flags = self.group_kind()
        if capture is None:
            self.flags = flags  # (?flags): to the end of the enclosing group, as in Go
            return []
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error("expression nests too deeply", self.source[start : self.pos])
        saved, self.flags = self.flags, flags
        if capture:
            self.names.append(name)
        inner = self.alternation()
        if self.peek() != ")":
            raise self.error("missing closing )", self.source)
        self.pos += 1
        self.flags = saved
        self.depth -= 1
        return [f"({inner})" if capture else f"(?:{inner})"]

    def group_kind(self) -> tuple[bool | None, str, Flag]:
        """Reads a group's opening: (True, name, flags) for a capture, (False, "", flags) for
        `(?:` or `(?flags:`, (None, "", flags) for `(?flags)`; `flags` hold inside it."""
        if not self.at("(?"):
            self.pos += 1
            return True, "", self.flags
        if self.at("(?P<") or self.at("(?<"):  # (?<= and (?<! were refused before
            start = self.pos
            self.pos += 4 if self.at("(?P<") else 3
            end = self.source.find(">", self.pos)
            name = self.source[self.pos : end] if end >= 0 else ""
            if end < 0 or not _NAME.fullmatch(name):
                raise self.error("invalid named capture", self.source[start : end + 1 or None])
            self.pos = end + 1
            return True, name, self.flags
        return self.flag_group()

    def flag_group(self) -> tuple[bool | None, str, Flag]:
        """`(?imsU-imsU)` or `(?imsU-imsU:`: the flags they leave in force."""
        start = self.pos
        self.pos += 2
        flags, negate, cleared = self.flags, False, False
        while (char := self.peek()) not in (")", ":", ""):
            if char == "-" and not negate:
                negate = True
            elif char in _FLAG_LETTERS:
                letter = _FLAG_LETTERS[char]
                flags = flags & ~letter if negate else flags | letter
                cleared = negate
            else:
                break
            self.pos += 1
        if char not in (")", ":") or (negate and not cleared):  # `(?x`, `(?-)`, `(?i`
            text = self.source[start : self.pos + 1]
            raise self.error("invalid or unsupported Perl syntax", text)
        self.pos += 1
        return (None if char == ")" else False), "", flags

    # -- escapes and classes ---------------------------------------------------------------

    def escape(self) -> list[str]:
        """A backslash outside a class: an assertion, \\Q...\\E, a class, or a literal."""
        next_char = self.peek(1)
        if next_char in _ASSERTIONS:
            self.pos += 2
            return [_ASSERTIONS[next_char]]
        if next_char == "Q":
            return self.quoted()
        ranges = self.class_escape()
        if ranges is not None:
            return [self.folded(class_pattern(*ranges))]
        return [self.literal(self.escaped_char())]

    def quoted(self) -> list[str]:
        """`\\Q...\\E`: literal text up to `\\E` or the end of the pattern."""
        self.pos += 2
        end = self.source.find("\\E", self.pos)
        stop = len(self.source) if end < 0 else end
        text = self.source[self.pos : stop]
        self.pos = len(self.source) if end < 0 else end + 2
        return [self.literal(ord(char)) for char in text]

    def class_escape(self) -> tuple[Ranges, bool] | None:
        """`\\d \\D \\s \\S \\w \\W` and `\\pX \\p{Name} \\PX \\P{^Name}`: (ranges, negated)."""
        letter = self.peek(1)
        if letter.lower() in PERL_CLASSES:
            self.pos += 2
            return PERL_CLASSES[letter.lower()], letter.isupper()
        if letter not in ("p", "P"):
            return None
        start = self.pos
        self.pos += 2
        if self.peek() == "{":
            end = self.source.find("}", self.pos)
            if end < 0:
                raise self.error("invalid character class range", self.source[start:])
            name = self.source[self.pos + 1 : end]
            self.pos = end + 1
        else:
            name = self.peek()
            self.pos += 1
        negated = letter == "P"
        if name.startswith("^"):
            negated, name = not negated, name[1:]
        return self.unicode_class(name, self.source[start : self.pos]), negated

    def unicode_class(self, name: str, text: str) -> Ranges:
        if name == "Any":
            return ((0, MAX_RUNE),)
        if name in CATEGORIES:
            return category(name)
        if name[:1].isupper() and name.isalpha():
            raise Re2Unsupported(
                f"the Unicode script class `{text}` is not supported by the built-in "
                "replayer; use a range such as [\\x{0370}-\\x{03FF}], or a real gor"
            )
        raise self.error("invalid character class range", text)

    def escaped_char(self) -> int:
        """A backslash escape that stands for one character (Go's parseEscape)."""
        start = self.pos
        self.pos += 1
        if self.pos >= len(self.source):
            raise Re2Error("trailing backslash at end of expression")
        char = self.peek()
        self.pos += 1
        if char.isascii() and not char.isalnum():
            return ord(char)  # escaped punctuation is itself
        if char in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[char]
        code = self.octal(char) if char in "01234567" else None
        if code is None and char == "x":
            code = self.hexadecimal()
        if code is None:
            bad = self.source[start : self.pos]
            if char in "123456789":
                raise Re2Error(
                    f"the backreference `{bad}` is not supported by Go's RE2, which gor uses"
                )
            raise self.error("invalid escape sequence", bad)
        return code

    def octal(self, first: str) -> int | None:
        """`\\0`, `\\12`, `\\123`; a lone `\\1`..`\\7` is a backreference (None)."""
        digits = first
        while len(digits) < 3 and self.peek() in tuple("01234567"):
            digits += self.peek()
            self.pos += 1
        if first != "0" and len(digits) == 1:
            return None
        return int(digits, 8)

    def hexadecimal(self) -> int | None:
        """`\\x7F` (two digits) or `\\x{10FFFF}`."""
        if self.peek() == "{":
            end = self.source.find("}", self.pos)
            digits = self.source[self.pos + 1 : end] if end > 0 else ""
            if not digits or not all(c in "0123456789abcdefABCDEF" for c in digits):
                return None
            code = int(digits, 16)
            self.pos = end + 1
            return code if code <= MAX_RUNE else None
        digits = self.source[self.pos : self.pos + 2]
        if len(digits) < 2 or not all(c in "0123456789abcdefABCDEF" for c in digits):
            return None
        self.pos += 2
        return int(digits, 16)

    def char_class(self) -> list[str]:
        """`[...]` with Go's rules: `]` first is literal, `-` literal where no range fits."""
        start = self.pos
        self.pos += 1
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while first or self.peek() != "]":
            if self.pos >= len(self.source):
                raise self.error("missing closing ]", self.source[start:])
            first = False
            ranges.extend(self.class_item(start))
        self.pos += 1
        return [self.folded(class_pattern(tuple(ranges), negated))]

    def class_item(self, start: int) -> Ranges:
        """One element of a class: `[:name:]`, `\\d`, `\\pL`, a character or a range."""
        if self.at("[:"):
            end = self.source.find(":]", self.pos + 2)
            if end >= 0:
                return self.posix_class(self.source[self.pos : end + 2])
        escaped = self.class_escape() if self.peek() == "\\" else None
        if escaped is not None:
            ranges, negated = escaped
            return negate(ranges) if negated else ranges
        item_start = self.pos
        low = self.class_char(start)
        high = low
        if self.peek() == "-" and self.peek(1) not in ("]", ""):
            self.pos += 1
            high = self.class_char(start)
            if high < low:
                text = self.source[item_start : self.pos]
                raise self.error("invalid character class range", text)
        return ((low, high),)

    def posix_class(self, text: str) -> Ranges:
        name = text[2:-2]
        negated = name.startswith("^")
        ranges = POSIX_CLASSES.get(name[1:] if negated else name)
        if ranges is None:
            raise self.error("invalid character class range", text)
        self.pos += len(text)
        return negate(ranges) if negated else ranges

    def class_char(self, start: int) -> int:
        if self.pos >= len(self.source):
            raise self.error("missing closing ]", self.source[start:])
        if self.peek() == "\\":
            return self.escaped_char()
        self.pos += 1
        return ord(self.source[self.pos - 1])


@functools.lru_cache(maxsize=256)
def translate(pattern: str) -> Translation:
    """The Python equivalent of Go pattern `pattern`; Re2Error where Go would refuse it."""
    parser = _Parser(pattern)
    return Translation(parser.translate(), tuple(parser.names))
