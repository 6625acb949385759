"""Shell-like splitting of config/gor.options into words that remember their line.

The file is written as for a POSIX shell (quotes, backslashes, `#` comments), but nothing
is expanded: `$VAR` and `$1` stay as written, as gor receives them when no shell is
involved (rewrite targets such as `/v2/$1` rely on that).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    text: str
    line: int


class SplitError(ValueError):
    """An unterminated quote; `line` is where its word starts."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


_BLANK = " \t\r\f\v"
_WORD_END = " \t\r\n\f\v"
# Inside double quotes a backslash escapes only these, as in POSIX sh.
_DQUOTE_ESCAPABLE = '$`"\\\n'


def _continuation(text: str, i: int) -> int:
    """Length of a backslash-newline (also with CRLF) at `i`, which the shell removes."""
    if text.startswith("\\\n", i):
        return 2
    if text.startswith("\\\r\n", i):
        return 3
    return 0


class _Splitter:
    """A cursor over the text: `i` is the position, `line` the current line number."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 1

    def words(self) -> list[Word]:
        words: list[Word] = []
        while self._skip_to_word():
            start_line = self.line
            words.append(Word(self._word(start_line), start_line))
        return words

    def _skip_to_word(self) -> bool:
        """Skip blanks, newlines, continuations and comments; False at the end of the text."""
        text, n = self.text, len(self.text)
        while self.i < n:
            char = text[self.i]
            continuation = _continuation(text, self.i)
            if char == "\n" or continuation:
                self.line += 1
                self.i += continuation or 1
            elif char in _BLANK:
                self.i += 1
            elif char == "#":  # a comment only where a word would start, as in sh
                end = text.find("\n", self.i)
                self.i = n if end < 0 else end
            else:
                return True
        return False

    def _word(self, start_line: int) -> str:
        parts: list[str] = []
        text, n = self.text, len(self.text)
        while self.i < n and text[self.i] not in _WORD_END:
            char = text[self.i]
            if char == "'":
                parts.append(self._single_quoted(start_line))
            elif char == '"':
                parts.append(self._double_quoted(start_line))
            elif char == "\\":
                parts.append(self._escaped())
            else:
                parts.append(char)
                self.i += 1
        return "".join(parts)

    def _single_quoted(self, start_line: int) -> str:
        end = self.text.find("'", self.i + 1)
        if end < 0:
            raise SplitError(start_line, "unterminated ' quote (add the closing ')")
        chunk = self.text[self.i + 1 : end]
        self.line += chunk.count("\n")
        self.i = end + 1
        return chunk

    def _double_quoted(self, start_line: int) -> str:
        text, n = self.text, len(self.text)
        parts: list[str] = []
        self.i += 1
        while self.i < n and text[self.i] != '"':
            char = text[self.i]
            if char == "\\" and self.i + 1 < n and text[self.i + 1] in _DQUOTE_ESCAPABLE:
                char = text[self.i + 1]
                self.i += 1
                if char == "\n":
                    char = ""  # a backslash-newline is removed
                    self.line += 1
            elif char == "\n":
                self.line += 1
            parts.append(char)
            self.i += 1
        if self.i >= n:
            raise SplitError(start_line, 'unterminated " quote (add the closing ")')
        self.i += 1
        return "".join(parts)

    def _escaped(self) -> str:
        """A backslash outside quotes: a continuation, or the next character taken literally."""
        continuation = _continuation(self.text, self.i)
        if continuation:
            self.line += 1
            self.i += continuation
            return ""
        if self.i + 1 >= len(self.text):
            self.i += 1  # a trailing backslash escapes nothing
            return ""
        self.i += 2
        return self.text[self.i - 1]


def split_words(text: str) -> list[Word]:
    """Split `text` like a POSIX shell would (no expansion); `#` starts a comment.

    Raises SplitError for an unterminated quote.
    """
    return _Splitter(text).words()
