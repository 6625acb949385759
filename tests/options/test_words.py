"""Shell-like splitting of config/gor.options into words (options/words.py)."""

from __future__ import annotations

import shlex

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.options.helpers import error_of
from traffic_duplicator.options import (
    split_words,
)


def test_words_follow_shell_quoting_and_comments() -> None:
    text = """# a comment line
--a 'single # not a comment' --b "double \\"q\\" \\$x \\n" # trailing comment
--c back\\ slash   --d=x#y
"""
    words = [(w.text, w.line) for w in split_words(text)]
    assert words == [
        ("--a", 2),
        ("single # not a comment", 2),
        ("--b", 2),
        ('double "q" $x \\n', 2),
        ("--c", 3),
        ("back slash", 3),
        ("--d=x#y", 3),
    ]


def test_line_continuation_and_crlf() -> None:
    words = split_words("--a \\\n  b\r\n--c d\r\n")
    assert [(w.text, w.line) for w in words] == [("--a", 1), ("b", 2), ("--c", 3), ("d", 3)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12), max_size=6)
)
def test_words_round_trip_through_shlex_quote(words: list[str]) -> None:
    # Whatever a shell quotes, our splitter reads back the same words.
    line = " ".join(shlex.quote(w) for w in words)
    assert [w.text for w in split_words(line)] == words


def test_unterminated_quote_names_the_line() -> None:
    assert error_of("--output-http http://a\n--http-set-header 'X: 1") == (
        "config/gor.options line 2: unterminated ' quote (add the closing ')"
    )
