"""Go's RE2 syntax and replacement templates (options/goregex.py)."""

from __future__ import annotations

import pytest

from tests.options.helpers import error_of
from traffic_duplicator.options import (
    compile_go_regex,
    go_replace_all,
    parse_header_regex,
    parse_header_rewrite,
    parse_url_rewrite,
)


def test_go_replacement_templates() -> None:
    rewrite = parse_url_rewrite("/v1/user/([^\\/]+)/ping:/v2/user/$1/ping")
    assert go_replace_all(rewrite.regex, rewrite.target, b"/v1/user/42/ping") == b"/v2/user/42/ping"
    header = parse_header_rewrite("Host: (.*).example.com,${1}.beta.example.com$$")
    assert go_replace_all(header.regex, header.target, b"a.example.com") == b"a.beta.example.com$"
    # Go reads `$1x` as a group named "1x": unknown, so empty.
    unknown = parse_url_rewrite("(a):$1x")
    assert go_replace_all(unknown.regex, unknown.target, b"a") == b""


def test_bad_regex_is_named() -> None:
    assert "is not a valid regular expression" in error_of("--output-null --http-allow-url '(['")


def test_posix_classes_from_re2() -> None:
    allow = parse_header_regex("X-Id: ^[[:digit:]]+$").regex
    assert allow.search(b"123") and not allow.search(b"12a")


# What gor does with a rewrite is Go's `Regexp.ReplaceAll` (http_modifier.go:
# `f.src.ReplaceAll(value, f.target)`), and with a filter `Regexp.Match`. Each row is a
# pattern, a template, a subject and Go's answer; every answer was produced by Go's own
# regexp (Go 1.19, tests/options/goregex_oracle) and agrees with its documentation.
REGEXP = "pkg.go.dev/regexp"
SYNTAX = "pkg.go.dev/regexp/syntax"
REPLACE_ALL: list[tuple[str, str, bytes, bytes, str]] = [
    # Empty matches: "Empty matches abutting a preceding match are ignored." Python's re.sub
    # replaces them since 3.7, which wrote the replacement twice (goreplay #934, #965).
    ("(.*)", "x1$1", b"val", b"x1val", f"{REGEXP} (ReplaceAll); goreplay #934"),
    ("(.*)", "BBB", b"anything", b"BBB", f"{REGEXP} (ReplaceAll); goreplay #965"),
    ("(.*)", "/shadow$1", b"/users?id=7", b"/shadow/users?id=7", f"{REGEXP} (ReplaceAll)"),
    ("x*", "-", b"abxd", b"-a-b-d-", f"{REGEXP} (ReplaceAll)"),
    ("a(x*)b", "T", b"-ab-axxb-", b"-T-T-", f"{REGEXP} ReplaceAll example"),
    # Templates: "$1x is equivalent to ${1x}, not ${1}x"; an unknown or unmatched group is
    # "replaced with an empty slice"; "$$" is a literal $; a malformed $ stays as it is.
    ("a(x*)b", "$1", b"-ab-axxb-", b"--xx-", f"{REGEXP} ReplaceAll example"),
    ("a(x*)b", "$1W", b"-ab-axxb-", b"---", f"{REGEXP} ReplaceAll example"),
    ("a(x*)b", "${1}W", b"-ab-axxb-", b"-W-xxW-", f"{REGEXP} ReplaceAll example"),
    ("(a)", "$1x|${1}x|$01|$0|$$|${|$-", b"a", b"|ax||a|$|${|$-", f"{REGEXP} (Expand)"),
    ("(?P<1x>a)", "$1x", b"a", b"a", f"{REGEXP} (Expand): a name may start with a digit"),
    ("(a)|(b)", "[$1|$2]", b"ab", b"[a|][|b]", f"{REGEXP} (Expand): unmatched group"),
    ("(a)", "$9|$name", b"a", b"|", f"{REGEXP} (Expand): out of range, unknown name"),
    (r"(?P<first>\w+) (?P<last>\w+)", "$last, $first", b"Ada Lovelace", b"Lovelace, Ada", REGEXP),
    # Flags set mid-pattern last to the end of the enclosing group, across `|`.
    ("a(?i)b|c", "-", b"aB C c AB", b"- - - AB", f"{SYNTAX} (?flags)"),
    ("(?:x(?i)y)z", "-", b"xYz xYZ", b"- xYZ", f"{SYNTAX} (?flags)"),
    ("(?U)a+", "-", b"aaa", b"---", f"{SYNTAX} flag U"),
    ("(?s)a.b", "-", b"a\nb", b"-", f"{SYNTAX} flag s"),
    ("a.b", "-", b"a\nb", b"a\nb", f"{SYNTAX}: . does not match \\n"),
    ("(?m)^b", "-", b"a\nb", b"a\n-", f"{SYNTAX} flag m"),
    ("(?i)straße", "-", "STRASSE Straße".encode(), b"STRASSE -", f"{SYNTAX}: simple folding"),
    # Ends of text: without (?m), $ is the end of the text only, like \z.
    ("a$", "-", b"a\n", b"a\n", f"{SYNTAX}: $ at end of text"),
    (r"a\z", "-", b"a", b"-", f"{SYNTAX} \\z"),
    # Literal text, classes and escapes.
    (r"\Q.*\E+", "-", b".*.**", b"--", f"{SYNTAX} \\Q...\\E"),
    ("[[:alpha:]]+", "-", b"ab1-2", b"-1-2", f"{SYNTAX} ASCII classes"),
    ("[[:^alpha:]]+", "-", b"ab1-2", b"ab-", f"{SYNTAX} ASCII classes"),
    (r"\pL+", "-", "été 42".encode(), b"- 42", f"{SYNTAX} \\pN"),
    (r"\p{Lu}", "-", "aÉb".encode(), b"a-b", f"{SYNTAX} \\p{{Name}}"),
    (r"\PL+", "-", "été 42".encode(), "été-".encode(), f"{SYNTAX} \\PN"),
    (r"\d+", "#", "1١2".encode(), "#١#".encode(), f"{SYNTAX}: \\d is [0-9]"),
    (r"\s+", "_", b"a\x0bb c", b"a\x0bb_c", f"{SYNTAX}: \\s is [\\t\\n\\f\\r ]"),
    (r"\bx", "-", "éx ax".encode(), "é- ax".encode(), f"{SYNTAX}: \\b is an ASCII boundary"),
    ("a{,2}", "-", b"a{,2}aa", b"-aa", f"{SYNTAX}: {{,n}} is literal"),
    (r"\101\x42\x{43}", "-", b"ABC", b"-", f"{SYNTAX} escapes"),
    (".", "-", b"\xff", b"-", f"{REGEXP}: an invalid UTF-8 byte is one rune"),
]


@pytest.mark.parametrize(
    ("pattern", "template", "subject", "go", "source"),
    REPLACE_ALL,
    ids=[row[0] + " " + row[1] for row in REPLACE_ALL],
)
def test_replace_all_gives_what_gor_gives(
    pattern: str, template: str, subject: bytes, go: bytes, source: str
) -> None:
    assert compile_go_regex(pattern).replace_all(subject, template.encode()) == go, source


# What Go's RE2 refuses, gor refuses at start: the build refuses it too, naming it.
REFUSED = [
    ("(?=a)", "a lookahead `(?=` is not supported by Go's RE2, which gor uses"),
    ("(?<!a)b", "a lookbehind `(?<!` is not supported by Go's RE2, which gor uses"),
    (r"(a)\1", "the backreference `\\1` is not supported by Go's RE2, which gor uses"),
    ("(?P<n>a)(?P=n)", "a backreference `(?P=` is not supported by Go's RE2, which gor uses"),
    ("(?>a)", "an atomic group `(?>` is not supported by Go's RE2, which gor uses"),
    ("(?#c)a", "a comment group `(?#` is not supported by Go's RE2, which gor uses"),
    # The rest word for word as Go's regexp/syntax says it.
    ("a**", "invalid nested repetition operator: `**`"),
    ("a{1001}", "invalid repeat count: `{1001}`"),
    (r"\Z", "invalid escape sequence: `\\Z`"),
    ("(?x)a", "invalid or unsupported Perl syntax: `(?x`"),
    ("[z-a]", "invalid character class range: `z-a`"),
    ("[[:foo:]]", "invalid character class range: `[:foo:]`"),
    ("(a", "missing closing ): `(a`"),
    ("a)", "unexpected ): `a)`"),
]


@pytest.mark.parametrize(("pattern", "reason"), REFUSED)
def test_what_re2_refuses_is_a_build_error_naming_file_line_and_reason(
    pattern: str, reason: str
) -> None:
    message = error_of(f"--output-null\n--http-allow-url '{pattern}'")
    assert message == (
        f"config/gor.options line 2: --http-allow-url: {pattern!r} "
        f"is not a valid regular expression ({reason})"
    )


def test_a_unicode_script_class_is_refused_with_what_to_write() -> None:
    # Go has script tables (\p{Greek}); the standard library has none to match them with.
    assert error_of("--output-null --http-allow-url '\\p{Greek}'") == (
        "config/gor.options line 1: --http-allow-url: '\\\\p{Greek}': the Unicode script "
        "class `\\p{Greek}` is not supported by the built-in replayer; use a range such as "
        "[\\x{0370}-\\x{03FF}], or a real gor"
    )


def test_filters_match_as_go_does() -> None:
    # gor's filters call Regexp.Match: anywhere in the value, and ^/$ at the ends only.
    assert compile_go_regex("^/api/").search(b"/api/v1")
    assert not compile_go_regex("^v1$").search(b"v1\n")
    assert compile_go_regex("(?i)^BEARER ").search(b"bearer x")
    assert compile_go_regex(r"\Q?id=\E").search(b"/u?id=7")
