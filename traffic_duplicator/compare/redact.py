"""Keeping secrets out of log lines: secret-like names, credential-like values, URLs.

A value is never printed when the header or any JSON key on its path is named like a
secret, or when the value itself looks like a credential. Names are split into words
(`X-Api-Key` → x, api, key; `accessToken` → access, token) and checked against a list that
errs on the side of hiding: hiding an innocent sample costs a little insight, printing a
password costs the user's trust.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "[masked]"
MAX_VALUE_CHARS = 80

_SECRET_WORDS = frozenset(
    {
        "authorization",
        "auth",
        "cookie",
        "cookies",
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "secrets",
        "token",
        "tokens",
        "apikey",
        "key",
        "credential",
        "credentials",
        "session",
        "sessionid",
        "sid",
        "signature",
        "jwt",
        "bearer",
        "otp",
        "pin",
        "csrf",
        "xsrf",
        "ssn",
        "private",
    }
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# Values that are credentials whatever their name: bearer/basic schemes, JWTs, and long
# unbroken tokens mixing letters and digits (API keys, session ids).
_CREDENTIAL = re.compile(
    r"(?i:bearer|basic|token|digest)\s+\S+"
    r"|eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r"|(?=[A-Za-z0-9_\-+/=]{24,})(?=\S*\d)(?=\S*[A-Za-z])[A-Za-z0-9_\-+/=]{24,}"
)


def words(name: str) -> list[str]:
    """Lower-case words of an identifier: `X-Api-Key`, `api_key`, `apiKey` → x/api/key."""
    return [w.lower() for w in _WORD.findall(name)]


def is_secret_name(name: str) -> bool:
    """True for a header or JSON key named like a secret (`password`, `x-api-key`, …)."""
    parts = words(name)
    if any(part in _SECRET_WORDS for part in parts):
        return True
    joined = "".join(parts)
    return any(word in joined for word in ("password", "secret", "apikey", "token"))


def any_secret_name(names: Iterable[str]) -> bool:
    return any(is_secret_name(name) for name in names)


def looks_like_credential(text: str) -> bool:
    return _CREDENTIAL.search(text) is not None


def render_value(value: object, secret: bool = False, limit: int = MAX_VALUE_CHARS) -> str:
    """A sample value for a log line: JSON-like, masked when secret, cut to `limit` chars."""
    if secret:
        return MASK
    text = json.dumps(value, ensure_ascii=False, default=str)
    if looks_like_credential(text):
        return MASK
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mask_url(url: str) -> str:
    """The URL with any user:password replaced by `***` (rule 6: secrets never printed)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
