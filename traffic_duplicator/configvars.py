"""The grammar of TRAFFIC_DUPLICATOR_* config vars: switches and numbers of seconds.

The wrapper's settings and the comparison's settings read the same kinds of values, so the
words and numbers they accept are defined once here. Each caller keeps its own error
message, which names its variable and what that variable does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def switch(raw: str, default: bool) -> bool | None:
    """A switch's value: `default` when empty, True or False for the words above (any
    case, surrounding blanks ignored), None for anything else."""
    word = raw.strip().lower()
    if not word:
        return default
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def read_switch(
    env: Mapping[str, str], name: str, default: bool, error: Callable[[str], Exception]
) -> bool:
    """The switch `name` in `env`; raises `error(raw value)` for a word not understood."""
    raw = env.get(name, "")
    value = switch(raw, default)
    if value is None:
        raise error(raw)
    return value


def seconds(raw: str, default: float, minimum: float, maximum: float) -> float | None:
    """A number of seconds from `minimum` to `maximum`: `default` when empty, None when
    the text is not such a number (NaN, infinities and other words included)."""
    text = raw.strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        return None
    return value if minimum <= value <= maximum and not math.isnan(value) else None
