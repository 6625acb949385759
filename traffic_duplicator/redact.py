"""Secrets out of everything the product prints: URL passwords, credentials, secret fields.

One place for the rule, used by the log writer (every logfmt value goes through
`mask_text`), by the options errors, and by whatever shows an output URL. What counts as
secret:

- the password of a URL's userinfo (`http://user:***@host`, RFC 3986 §3.2.1);
- the value of a header or parameter whose name says it is a credential: Authorization,
  Proxy-Authorization, Cookie, Set-Cookie, and names containing token, secret, password,
  passwd, session, auth, credential, signature, or key parts such as `api-key`.

Masking is on text as written; it never decodes or re-encodes what it leaves alone.
"""

from __future__ import annotations

import re

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
_NAME_SEP = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?P<sep>[ \t]*:[ \t]*|=)"
)
_HEADER_VALUE_END = re.compile(r"['\"\r\n]|$")
_PARAM_VALUE_END = re.compile(r"[\s'\"&;,]|$")


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


def mask_text(text: str) -> str:
    """Free text (a log value, an error message) with URL passwords and the values of
    secret-named `Name: value` and `name=value` pairs masked."""
    masked = mask_url(text)
    if ":" not in masked and "=" not in masked:
        return masked
    out: list[str] = []
    done = 0  # text before this is already in `out`
    for found in _NAME_SEP.finditer(masked):
        if found.start() < done or not is_secret_name(found.group("name")):
            continue
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
