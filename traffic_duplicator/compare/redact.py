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

from traffic_duplicator.redact import is_secret_name, mask_url

MASK = "[masked]"
__all__ = ["is_secret_name", "mask_url"]
MAX_VALUE_CHARS = 80

# Values that are credentials whatever their name: bearer/basic schemes, JWTs, and long
# unbroken tokens mixing letters and digits (API keys, session ids).
_CREDENTIAL = re.compile(
    r"(?i:bearer|basic|token|digest)\s+\S+"
    r"|eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r"|(?=[A-Za-z0-9_\-+/=]{24,})(?=\S*\d)(?=\S*[A-Za-z])[A-Za-z0-9_\-+/=]{24,}"
)


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
