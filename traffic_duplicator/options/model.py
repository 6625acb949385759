"""Options as written, and their meaning: words in, flags found in the table out.

gor reads flags with Go's `flag` package: one or two dashes, `--flag value` or
`--flag=value`, booleans never take the next word. The same reader serves the options file
(positions are lines) and the replayer's command line (positions are arguments). Every value
is checked here by the parser the replayer later uses, so what passes cannot fail later.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from traffic_duplicator.options.errors import BadValue, OptionsError
from traffic_duplicator.options.flags import ALIASES, BY_NAME, HINTS, Flag, Kind, TypedFlag
from traffic_duplicator.options.values import FALSE_WORDS, TRUE_WORDS
from traffic_duplicator.options.words import SplitError, Word, split_words
from traffic_duplicator.redact import mask_url

DEFAULT_SOURCE = "config/gor.options"

T = TypeVar("T")


@dataclass(frozen=True)
class ParsedFlag:
    """One flag occurrence: canonical name, the spelling used, its value and where it was."""

    name: str
    spelling: str
    value: str | None
    line: int
    deprecated_alias: bool
    builtin_supported: bool

    @property
    def spec(self) -> Flag:
        return BY_NAME[self.name]


@dataclass(frozen=True)
class GorOptions:
    """Options as written: the words to hand to gor or the replayer, and what they mean."""

    source: str
    argv: tuple[str, ...]
    flags: tuple[ParsedFlag, ...]
    unit: str = "line"  # "line" for a file, "argument" for a command line

    def needs_real_gor(self) -> tuple[ParsedFlag, ...]:
        """Flags the built-in replayer does not implement."""
        return tuple(f for f in self.flags if not f.builtin_supported)

    def outputs(self) -> tuple[str, ...]:
        """The --output-http URLs as written (without any |limit, passwords masked)."""
        return tuple(
            mask_url(f.value.rpartition("|")[0] if "|" in f.value else f.value)
            for f in self.flags
            if f.name == "output-http" and f.value is not None
        )

    def deprecated(self) -> tuple[ParsedFlag, ...]:
        return tuple(f for f in self.flags if f.deprecated_alias)

    def all(self, name: str) -> list[ParsedFlag]:
        return [f for f in self.flags if f.name == name]

    def last(self, name: str) -> ParsedFlag | None:
        found = self.all(name)
        return found[-1] if found else None

    def has(self, name: str) -> bool:
        """A flag that is present and, for booleans, not set to false."""
        last = self.last(name)
        if last is None:
            return False
        if last.spec.kind is Kind.BOOL:
            return last.value is None or last.value in TRUE_WORDS
        return True

    def values(self, flag: TypedFlag[T]) -> list[T]:
        """The parsed value of each occurrence of `flag`, in order (checked at parse time)."""
        return [flag.value_of(f.value) for f in self.flags if f.name == flag.name]

    def value(self, flag: TypedFlag[T], default: T) -> T:
        """The last occurrence's parsed value (the last one wins, as in gor), or `default`."""
        last = self.last(flag.name)
        return default if last is None else flag.value_of(last.value)

    def where(self, flag: ParsedFlag) -> str:
        return f"{self.source} {self.unit} {flag.line}" if flag.line else self.source

    def error(self, flag: ParsedFlag, message: str) -> OptionsError:
        return OptionsError(f"{self.where(flag)}: {message}")


def _suggest(name: str) -> str:
    if name in HINTS:
        hint = HINTS[name]
    else:
        candidates = list(BY_NAME) + list(ALIASES)
        close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
        if not close:
            return "it is not a GoReplay flag; check the spelling or remove it"
        hint = "--" + ALIASES.get(close[0], close[0])
    spec = BY_NAME.get(hint[2:])
    extra = " It needs a real gor binary (see vendor/gor/)." if spec and not spec.builtin else ""
    return f"did you mean {hint}?{extra}"


def _needs_gor_file(path: str) -> bool:
    """Date placeholders and gzip are gor file-output features we do not reimplement."""
    return "%" in path or path.endswith(".gz") or path.startswith("s3://")


def _is_flag_word(text: str) -> bool:
    return text.startswith("-") and text not in ("-", "--") and not text.startswith("---")


class _Reader:
    """Reads flags from words; `pos` is the next word, `flags` what was read so far."""

    def __init__(self, words: Sequence[Word], source: str, unit: str) -> None:
        self.words = words
        self.source = source
        self.unit = unit
        self.pos = 0
        self.flags: list[ParsedFlag] = []

    def fail(self, line: int, message: str) -> OptionsError:
        where = f"{self.source} {self.unit} {line}" if line else self.source
        return OptionsError(f"{where}: {message}")

    def read(self) -> list[ParsedFlag]:
        while self.pos < len(self.words):
            self.flags.append(self._flag(self.words[self.pos]))
        return self.flags

    def _flag(self, word: Word) -> ParsedFlag:
        if not _is_flag_word(word.text):
            raise self._not_a_flag(word)
        spelling, equals, inline = word.text.partition("=")
        raw_name = spelling.lstrip("-")
        name = ALIASES.get(raw_name, raw_name)
        spec = BY_NAME.get(name)
        if spec is None:
            raise self.fail(word.line, f"unknown flag {spelling} ({_suggest(raw_name)})")
        value = self._value(word, spec, spelling, inline if equals else None)
        if value is not None and spec.kind is not Kind.BOOL:
            try:
                spec.parse(value)
            except BadValue as exc:
                raise self.fail(word.line, f"{spelling}: {exc}") from None
        builtin = spec.builtin and not (name == "output-file" and _needs_gor_file(value or ""))
        return ParsedFlag(name, spelling, value, word.line, raw_name in ALIASES, builtin)

    def _not_a_flag(self, word: Word) -> OptionsError:
        text = word.text
        if text == "--":
            return self.fail(
                word.line, "'--' ends the flags, so nothing after it is read; remove it"
            )
        previous = self.flags[-1] if self.flags else None
        if previous is not None and previous.spec.kind is Kind.BOOL:
            return self.fail(
                word.line,
                f"unexpected word {text!r} after --{previous.name}, which takes no value "
                f"(write --{previous.name} or --{previous.name}=false)",
            )
        return self.fail(word.line, f"unexpected word {text!r}: every option starts with --")

    def _value(self, word: Word, spec: Flag, spelling: str, inline: str | None) -> str | None:
        """The flag's value as written (None for a flag written alone); advances `pos`."""
        self.pos += 1
        if spec.kind is Kind.BOOL:
            if inline is not None and inline not in TRUE_WORDS + FALSE_WORDS:
                raise self.fail(word.line, f"{spelling} is true or false, not {inline!r}")
            return inline
        if inline is not None:
            return inline
        following = self.words[self.pos].text if self.pos < len(self.words) else None
        if spec.kind is Kind.OPTIONAL_COUNT:
            if following is None or not following.isdigit():
                return None
        elif following is None:
            raise self.fail(word.line, f"{spelling} needs a value, e.g. {spelling} {spec.example}")
        elif _names_a_flag(following):
            raise self.fail(
                word.line,
                f"{spelling} needs a value before {following}, e.g. {spelling} {spec.example}",
            )
        self.pos += 1
        return following


def _names_a_flag(text: str) -> bool:
    """A word that would be a flag, where a value was expected: the value is missing."""
    return text.startswith("-") and text.partition("=")[0].lstrip("-") in (
        BY_NAME.keys() | ALIASES.keys()
    )


def _parse_words(words: Sequence[Word], source: str, unit: str) -> GorOptions:
    flags = _Reader(words, source, unit).read()
    return GorOptions(source, tuple(w.text for w in words), tuple(flags), unit)


def parse_options(text: str, source: str = DEFAULT_SOURCE) -> GorOptions:
    """Parse the text of an options file; OptionsError names the line, flag and fix."""
    try:
        words = split_words(text)
    except SplitError as exc:
        raise OptionsError(f"{source} line {exc.line}: {exc}") from None
    return _parse_words(words, source, "line")


def parse_argv(argv: Sequence[str], source: str = "command line") -> GorOptions:
    """Parse command-line words with the same table; positions count from 1."""
    words = [Word(text, index) for index, text in enumerate(argv, start=1)]
    return _parse_words(words, source, "argument")


def load_options(path: str | os.PathLike[str]) -> GorOptions:
    """Read and parse an options file; a missing file is an OptionsError with the fix."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise OptionsError(
            f"{name}: file not found; create it with your GoReplay flags, "
            "e.g. --output-http https://staging.example.com"
        ) from None
    except IsADirectoryError:
        raise OptionsError(f"{name}: is a directory; it must be a file of GoReplay flags") from None
    except UnicodeDecodeError:
        raise OptionsError(f"{name}: is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise OptionsError(
            f"{name}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    return parse_options(text, name)
