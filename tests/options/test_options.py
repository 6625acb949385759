"""The config/gor.options parser: words, flags, values, errors, and its CLI for bin/compile."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import python_env
from traffic_duplicator.errors import UserError
from traffic_duplicator.options import (
    BY_NAME,
    FLAGS,
    Kind,
    LimitKind,
    OptionsError,
    Scope,
    go_replace_all,
    load_options,
    parse_argv,
    parse_duration,
    parse_hash_limit,
    parse_header_regex,
    parse_header_rewrite,
    parse_options,
    parse_output_http,
    parse_size,
    parse_url_rewrite,
    split_words,
    summary,
    validate_options_file,
)


def error_of(text: str, gor_available: bool = False) -> str:
    with pytest.raises(OptionsError) as info:
        validate_options_file(parse_options(text), gor_available)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- words -----------------------------------------------------------------------------


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


# --- flags -----------------------------------------------------------------------------


def test_equals_and_space_forms_and_single_dash_are_the_same_flag() -> None:
    options = parse_options(
        "-output-http=http://a --output-http http://b\n-stats --split-output=true"
    )
    assert [(f.name, f.spelling, f.value, f.line) for f in options.flags] == [
        ("output-http", "-output-http", "http://a", 1),
        ("output-http", "--output-http", "http://b", 1),
        ("stats", "-stats", None, 2),
        ("split-output", "--split-output", "true", 2),
    ]
    assert options.argv == (
        "-output-http=http://a",
        "--output-http",
        "http://b",
        "-stats",
        "--split-output=true",
    )
    assert options.outputs() == ("http://a", "http://b")
    assert options.has("split-output")


def test_boolean_false_turns_a_flag_off() -> None:
    assert not parse_options("--output-null --split-output=false").has("split-output")


def test_unknown_flag_suggests_the_closest_name() -> None:
    assert error_of("--output-http http://a\n\n--output-htp x") == (
        "config/gor.options line 3: unknown flag --output-htp (did you mean --output-http?)"
    )


def test_unknown_flag_without_a_near_name() -> None:
    assert "not a GoReplay flag" in error_of("--frobnicate")


def test_http_header_from_goreplays_docs_points_to_http_set_header() -> None:
    assert "did you mean --http-set-header?" in error_of("--http-header 'X: 1'")


def test_a_word_after_a_boolean_flag_is_an_error_not_silently_ignored() -> None:
    # Go's flag package stops at the first non-flag word and ignores the rest.
    message = error_of("--output-http http://a --split-output true --http-allow-method GET")
    assert "unexpected word 'true' after --split-output" in message


def test_missing_value_and_flag_as_value() -> None:
    assert error_of("--output-http") == (
        "config/gor.options line 1: --output-http needs a value, "
        "e.g. --output-http https://staging.example.com"
    )
    assert "needs a value before --stats" in error_of("--output-http --stats")


def test_verbose_takes_an_optional_level() -> None:
    options = parse_options("--verbose --output-null\n--verbose 2 --verbose=true")
    assert [f.value for f in options.all("verbose")] == [None, "2", "true"]


@pytest.mark.parametrize(
    ("old", "new", "value"),
    [
        ("output-http-header", "http-set-header", "X-A: 1"),
        ("output-http-method", "http-allow-method", "GET"),
        ("output-http-url-regexp", "http-allow-url", "^/api"),
        ("output-http-rewrite-url", "http-rewrite-url", "/a:/b"),
        ("output-http-header-filter", "http-allow-header", "X-A: ^1"),
        ("output-http-header-hash-filter", "http-header-limiter", "User-Id: 1/4"),
    ],
)
def test_old_names_are_aliases_with_a_notice(old: str, new: str, value: str) -> None:
    options = parse_options(f"--output-null --{old} '{value}'")
    flag = options.flags[1]
    assert (flag.name, flag.spelling, flag.deprecated_alias) == (new, f"--{old}", True)
    assert f"deprecated --{old} (line 1): use --{new}" in summary(options)


@pytest.mark.parametrize(
    "flag", ["--middleware 'node mw.js'", "--output-tcp x:1", "--prettify-http"]
)
def test_real_gor_flags_are_rejected_without_gor(flag: str) -> None:
    message = error_of(f"--output-http http://a {flag}")
    assert message.endswith("needs a real gor binary (see vendor/gor/), or remove it")
    validate_options_file(parse_options(f"--output-http http://a {flag}"), gor_available=True)


def test_output_kafka_is_named_and_points_to_real_gor() -> None:
    message = error_of("--output-kafka x")
    assert "did you mean --output-kafka-host?" in message
    assert "real gor binary" in message


@pytest.mark.parametrize("flag", ["--input-raw :80", "--input-http :80", "--input-tcp :1"])
def test_inputs_do_not_belong_in_the_options_file(flag: str) -> None:
    message = error_of(f"--output-http http://a {flag}", gor_available=True)
    assert "the wrapper supplies the input" in message


def test_extension_flags_are_command_line_only() -> None:
    assert "not a GoReplay flag" in error_of("--output-null --flush-timeout 5s")
    assert parse_argv(["--flush-timeout", "5s"]).flags[0].name == "flush-timeout"


def test_no_output_is_an_error() -> None:
    assert error_of("--http-set-header 'X: 1'") == (
        "config/gor.options: no output; add e.g. --output-http https://staging.example.com"
    )


def test_file_output_features_we_do_not_have_need_gor() -> None:
    assert "needs a real gor" in error_of("--output-file /tmp/%Y%m%d.gor")
    assert "needs a real gor" in error_of("--output-file /tmp/x.gor.gz")
    validate_options_file(parse_options("--output-file /tmp/x.gor"))


def test_argv_errors_name_the_argument() -> None:
    with pytest.raises(OptionsError) as info:
        parse_argv(["--input-http", ":1", "--output-http-timeout", "x"], source="replayer")
    assert str(info.value).startswith("replayer argument 3: --output-http-timeout:")


def test_table_is_consistent() -> None:
    assert len(BY_NAME) == len(FLAGS)
    for flag in FLAGS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", flag.name)
        if flag.builtin and flag.kind is Kind.VALUE:
            assert flag.parse is not None and flag.example, flag.name
    assert {f.name for f in FLAGS if f.scope is Scope.INPUT} == {
        "input-http",
        "input-tcp",
        "input-file",
    }


# --- a corpus of real-world files --------------------------------------------------------

CORPUS = {
    # The buildpack's 2015 README example.
    "heroku-2015": (
        "--output-http 'https://my-downstream-app.herokuapp.com' "
        "--output-http-header 'Host: my-downstream-app.herokuapp.com'\n"
    ),
    # GoReplay's README and wiki examples, options part, as people paste them.
    "goreplay-readme": '--output-http="http://staging.env"\n',
    "rate-limits": "--output-http 'http://staging.com|10'\n--output-http \"http://dev.com|10%\"\n",
    "split": "--output-http http://staging.com --output-http http://dev.com --split-output\n",
    "rewrites": (
        "--output-http http://staging.server\n"
        '--http-set-header "User-Agent: Replayed by Gor"\n'
        '--http-set-header "Enable-Feature-X: true"\n'
        "--http-rewrite-url /v1/user/([^\\\\/]+)/ping:/v2/user/$1/ping\n"
        "--http-set-param api_key=1\n"
        "--http-rewrite-header 'Host: (.*).example.com,$1.beta.example.com'\n"
    ),
    "filters": (
        "--output-http staging.com\n"
        "--http-allow-url ^www. --http-disallow-url ^/admin\n"
        "--http-allow-header api-version:^v1 --http-disallow-header 'User-Agent: Replayed by Gor'\n"
        '--http-basic-auth-filter "^customer[0-9].*"\n'
        "--http-allow-method GET --http-allow-method OPTIONS\n"
        "--http-header-limiter user-id:25% --http-param-limiter user_id:25%\n"
    ),
    "gor-0.x": (
        "# written for gor 0.9\n"
        "-output-http=http://staging.com -output-http-method GET\n"
        "-output-http-url-regexp ^/api -output-http-header-filter 'X-A: b'\n"
        "-output-http-workers 20 -output-http-stats -verbose\n"
    ),
    "tuning": (
        "--output-http https://staging.example.com --output-http-skip-verify\n"
        "--output-http-workers 50 --output-http-timeout 30s --output-http-queue-len 5000\n"
        "--output-http-redirects 2 --stats --output-http-stats --output-http-stats-ms 1000\n"
        "--exit-after 1h30m\n"
    ),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_parses_and_validates(name: str) -> None:
    options = parse_options(CORPUS[name])
    validate_options_file(options)
    assert options.outputs()
    assert all(f.builtin_supported for f in options.flags)


def test_goreplay_unquoted_rewrite_header_example_is_a_clear_error() -> None:
    # The help text's `--http-rewrite-header Host: (.*)...` is two words in any shell.
    message = error_of("--output-null --http-rewrite-header Host: (.*).example.com,$1.b.com")
    assert "line 1: --http-rewrite-header:" in message
    assert "'Name: regex,replacement'" in message


def test_goreplay_readme_capture_example_points_at_the_input() -> None:
    message = error_of("--input-raw :8000 --output-http http://staging.com", gor_available=True)
    assert message.startswith("config/gor.options line 1: --input-raw does not belong")


# --- values -----------------------------------------------------------------------------


def test_durations_are_go_syntax() -> None:
    assert parse_duration("5s") == 5
    assert parse_duration("1m30s") == 90
    assert parse_duration("300ms") == pytest.approx(0.3)
    assert parse_duration("1.5h") == 5400
    assert parse_duration("0") == 0
    for bad in ("5", "", "s", "5 s", "-1s", "5sec"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_sizes() -> None:
    assert parse_size("32mb") == 32 << 20
    assert parse_size("1k") == 1024
    assert parse_size("4096") == 4096


def test_output_urls_and_limits() -> None:
    target = parse_output_http("staging.com|10")
    assert (target.url, target.port, target.limit and target.limit.kind) == (
        "http://staging.com",
        80,
        LimitKind.RATE,
    )
    percent = parse_output_http("https://s.example.com:8443/base/|25%")
    assert (percent.scheme, percent.port, percent.path, percent.host_header) == (
        "https",
        8443,
        "/base",
        "s.example.com:8443",
    )
    assert percent.limit is not None and percent.limit.value == 25
    for bad in ("ftp://x", "http://", "http://a|x", "http://a|150%", "|10"):
        with pytest.raises(ValueError):
            parse_output_http(bad)


def test_header_regex_accepts_both_spacings() -> None:
    assert parse_header_regex("Api-Version: ^v1").regex.search(b"v1.2")
    assert parse_header_regex("api-version:^v1").name == "api-version"


def test_hash_limits_accept_percent_and_old_fraction() -> None:
    assert parse_hash_limit("user-id: 25%").percent == 25
    assert parse_hash_limit("user-id:1/4").percent == 25


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


# --- files and the CLI --------------------------------------------------------------------


def test_missing_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(OptionsError) as info:
        load_options(tmp_path / "gor.options")
    assert "file not found; create it" in str(info.value)
    assert isinstance(info.value, UserError)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "traffic_duplicator.options", *args],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=30,
        check=False,
    )


def test_cli_prints_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "gor.options"
    path.write_text(CORPUS["heroku-2015"] + "--output-http 'http://b.example.com|5'\n")
    result = run_cli(str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "output-http https://my-downstream-app.herokuapp.com",
        "output-http http://b.example.com (limit 5/s)",
        "deprecated --output-http-header (line 1): use --http-set-header",
    ]


def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "gor.options"
    path.write_text("--output-http http://a\n--middleware ./mw.sh\n")
    result = run_cli(str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"{path} line 2: --middleware needs a real gor binary (see vendor/gor/), or remove it\n"
    )
    with_gor = run_cli(str(path), "--gor-available")
    assert with_gor.returncode == 0, with_gor.stderr
    assert "needs-real-gor --middleware (line 2)" in with_gor.stdout


def test_cli_missing_file(tmp_path: Path) -> None:
    result = run_cli(str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "file not found" in result.stderr
    assert "Traceback" not in result.stderr
