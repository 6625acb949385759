"""Secrets out of everything the product prints: URL passwords, credentials, secret fields.

One place for the rule, used by the log writer (every logfmt value goes through
`mask_text`), by the options errors, and by whatever shows an output URL. What counts as
secret:

- the password of a URL's userinfo (`http://user:***@host`, RFC 3986 §3.2.1);
- the value of a header or parameter whose name says it is a credential: Authorization,
  Proxy-Authorization, Cookie, Set-Cookie, and names containing token, secret, password,
  passwd, session, auth, credential, signature, or key parts such as `api-key`.

Masking is on text as written; it never decodes or re-encodes what it leaves alone. Two
shapes are read as they are meant: a command line's `--name=value` and `--name value`
(`mask_argv`), and the `fields="name=count,…"` list of an `at=compare` line
(compare/lines.py), whose entries are field names and counts, never values: its counts stay.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

MASK = "***"

# scheme://user:password@ — the password is everything up to the last "@" of the authority.
# The pattern starts at "://", not at the scheme: a scheme-like run before every position
# would make a long line (64 KiB of letters) cost quadratic time.
_URL_PASSWORD = re.compile(r"(?P<head>://[^\s/?#@:'\"]*:)[^\s/?#'\"]*@")
# Parts found anywhere in a name; "auth" only as a word below, so that Author is no secret.
_SECRET_PARTS = (
    *("token", "secret", "passw", "pwd", "session", "authori", "authent", "credential"),
    "signature",
)
_SECRET_WORDS = frozenset(
    {
        *("cookie", "cookies", "key", "apikey", "sig", "sid", "jwt", "bearer", "otp", "pin"),
        *("csrf", "xsrf", "ssn", "private", "passphrase", "auth"),
    }
)
# Words of a name in any spelling: `X-Api-Key`, `api_key`, `apiKey` all give api, key.
_NAME_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# `Name: value` or `name=value` inside free text. A header's value runs to a quote or the
# end of the line (a Cookie holds `;` and `,`); a parameter's to `&`, `;`, `,` or a space.
# A name may follow a command-line flag's dashes (`--password=x`), but not a letter or a
# dash inside a word: `body:$.api-token=3` has no name `token`.
_NAME_SEP = re.compile(
    r"(?<![A-Za-z0-9_.-])-{0,2}(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?P<sep>[ \t]*:[ \t]*|=)"
)
_HEADER_VALUE_END = re.compile(r"['\"\r\n]|$")
_PARAM_VALUE_END = re.compile(r"[\s'\"&;,]|$")
# The `fields` list of an `at=compare` line: quoted, no quote or backslash inside (names are
# %-escaped there), and its entries' counts are digits.
_COMPARE_LINE = re.compile(r"(?:^|\s)at=compare(?:\s|$)")
_COMPARE_FIELDS = re.compile(r'(?<!\S)fields="(?P<list>[^"\\]*)"')
_COUNT = re.compile(r"\d+")
# A flag that names a secret and takes its value as the next argument: `--api-token TOK`.
_FLAG = re.compile(r"--?(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)")


def is_secret_name(name: str) -> bool:
    """Whether a header, parameter or field called `name` holds a credential."""
    lowered = name.strip().lower()
    if any(part in lowered for part in _SECRET_PARTS):
        return True
    return any(word.lower() in _SECRET_WORDS for word in _NAME_WORD.findall(name))


def mask_url(url: str) -> str:
    """`url` with the password of its userinfo replaced by `***` (the user name is kept)."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", url)


def mask_header(name: str, value: str) -> str:
    """A header's value as it may be shown: `***` for a credential, else as it is."""
    return MASK if is_secret_name(name) else value


def _count_lists(text: str) -> list[tuple[int, int]]:
    """Where the `fields` list of an `at=compare` line is: (start, end) of its text."""
    if _COMPARE_LINE.search(text) is None:
        return []
    return [found.span("list") for found in _COMPARE_FIELDS.finditer(text)]


def _is_count(text: str, found: re.Match[str], lists: list[tuple[int, int]]) -> bool:
    """Whether `found` is a `name=count` entry of a compare line's `fields` list: digits
    up to the next entry or the list's end."""
    if found.group("sep") != "=":
        return False
    count = _COUNT.match(text, found.end())
    if count is None:
        return False
    for start, end in lists:
        if start <= found.start() and count.end() <= end:
            return count.end() == end or text[count.end()] == ","
    return False


def mask_text(text: str) -> str:
    """Free text (a log value, an error message) with URL passwords and the values of
    secret-named `Name: value`, `name=value` and `--name=value` pairs masked."""
    masked = mask_url(text)
    if ":" not in masked and "=" not in masked:
        return masked
    return _mask_pairs(masked, _count_lists(masked) if "fields=" in masked else [])


def mask_counts(text: str) -> str:
    """The `fields` list of an `at=compare` line (`name=count,…`, compare/lines.py), masked
    as `mask_text` masks it inside that line: the counts stay, a URL password in a name
    goes, and so does any entry whose value is not a count."""
    masked = mask_url(text)
    trusted = '"' not in masked and "\\" not in masked
    return _mask_pairs(masked, [(0, len(masked))] if trusted else [])


def _mask_pairs(masked: str, lists: list[tuple[int, int]]) -> str:
    out: list[str] = []
    done = 0  # text before this is already in `out`
    for found in _NAME_SEP.finditer(masked):
        if found.start() < done or not is_secret_name(found.group("name")):
            continue
        if lists and _is_count(masked, found, lists):
            continue  # a mismatch count of a secret-named header, not its value
        ends = _PARAM_VALUE_END if found.group("sep") == "=" else _HEADER_VALUE_END
        end = ends.search(masked, found.end())
        stop = len(masked) if end is None else end.start()
        value = masked[found.end() : stop]
        if not value or value.startswith(MASK):
            continue
        out.append(masked[done : found.end()])
        out.append(MASK)
        done = stop
    out.append(masked[done:])
    return "".join(out)


def mask_argv(argv: Sequence[str]) -> str:
    """A command line as a shell would take it (shlex.join), for a log line: URL passwords
    and the values of secret-named flags masked, `--password=X` and `--password X` alike.

    A word after a secret-named `--flag` is taken as its value unless it is a flag itself
    (`--auth-required --verbose`); short flags (`-p X`) are not guessed at.
    """
    words: list[str] = []
    secret_next = False
    for arg in argv:
        if secret_next and not arg.startswith("-"):
            words.append(MASK)
            secret_next = False
            continue
        name, equals, _ = arg.partition("=")
        flag = _FLAG.fullmatch(name) is not None and is_secret_name(name)
        secret_next = flag and not equals and arg.startswith("--")
        # The whole value goes, spaces and all: `'--password=a b'` must not keep ` b`.
        words.append(f"{name}={MASK}" if flag and equals else mask_text(shlex.quote(arg)))
    return " ".join(words)
