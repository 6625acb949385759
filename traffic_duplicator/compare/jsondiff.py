"""Structural comparison of two JSON documents, reporting the paths that differ.

Paths are written as in JSONPath: `$.user.name`, `$.items[3].price`, `$["odd key"]`.
Objects compare key by key (order does not matter), arrays index by index, numbers by
value (`1` equals `1.0`), and a value whose type changed is one difference at its path.

For counting, a path is generalised into a *field*: array indices become `[*]` and object
keys that look like record ids become `*`, so `$.items[3].price` and `$.items[7].price` are
one field, and the number of fields stays small on any data.

Ignore patterns (`TRAFFIC_DUPLICATOR_COMPARE_IGNORE`) use the same notation plus `*`
(any one key or index) and `..name` (a key at any depth): `$.meta.generated_at`,
`$.items[*].updated_at`, `$..request_id`. A pattern ignores the whole subtree it names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from traffic_duplicator.compare.routes import placeholder


class _Missing:
    """Stands for a key or element that one side does not have."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()
Path = tuple[str | int, ...]
JsonDifference = tuple[Path, Any, Any]  # (path, production's value, shadow's value)
DEFAULT_MAX_DIFFERENCES = 50

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")


# JSON's types as json.loads builds them; anything else is MISSING.
_KINDS: dict[type, str] = {
    type(None): "null",
    bool: "bool",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _kind(value: object) -> str:
    return _KINDS.get(type(value), "missing")


def _key_text(key: str) -> str:
    if _IDENTIFIER.fullmatch(key):
        return "." + key
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'["{escaped}"]'


def render_path(path: Path) -> str:
    """`$.items[3].price` for ("items", 3, "price").

    Keys shaped like tokens, hashes or UUIDs print as `*`: a key can itself be a secret.
    """
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else _shown_key(p) for p in path)


def _shown_key(key: str) -> str:
    return ".*" if placeholder(key) in (":token", ":hex", ":uuid") else _key_text(key)


def field_path(path: Path) -> str:
    """The generalised field of a path (module docstring)."""
    parts = []
    for part in path:
        if isinstance(part, int):
            parts.append("[*]")
        elif placeholder(part) != part:
            parts.append(".*")
        else:
            parts.append(_key_text(part))
    return "$" + "".join(parts)


# Pattern steps: ("key", name) | ("index", n) | ("any", None) | ("deep", name or None)
_Step = tuple[str, str | int | None]
_STEP = re.compile(
    r"""\.\.(?P<deep>[^.\[\]]+)"""
    r"""|\.(?P<key>[^.\[\]]+)"""
    r"""|\[(?P<index>\d+|\*)\]"""
    r"""|\[(?P<quote>["'])(?P<quoted>(?:\\.|(?!(?P=quote)).)*)(?P=quote)\]"""
)


@dataclass(frozen=True)
class JsonPattern:
    """A parsed ignore pattern; `matches(path)` is true for the path and its subtree."""

    text: str
    steps: tuple[_Step, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPattern:
        """Raises ValueError naming what is wrong with `text`."""
        if not text.startswith("$"):
            raise ValueError(f"JSON path {text!r} does not start with $")
        steps: list[_Step] = []
        pos = 1
        while pos < len(text):
            match = _STEP.match(text, pos)
            if match is None:
                raise ValueError(f"JSON path {text!r} cannot be read from {text[pos:]!r}")
            steps.append(_step(match))
            pos = match.end()
        return cls(text, tuple(steps))

    def matches(self, path: Path) -> bool:
        return _match(self.steps, 0, path, 0)


def _step(match: re.Match[str]) -> _Step:
    if match.group("deep") is not None:
        name = match.group("deep")
        return ("deep", None if name == "*" else name)
    if match.group("key") is not None:
        key = match.group("key")
        return ("any", None) if key == "*" else ("key", key)
    if match.group("index") is not None:
        index = match.group("index")
        return ("any", None) if index == "*" else ("index", int(index))
    return ("key", re.sub(r"\\(.)", r"\1", match.group("quoted")))


def _match(steps: tuple[_Step, ...], i: int, path: Path, j: int) -> bool:
    if i == len(steps):
        return True  # the pattern names an ancestor of (or the very) path
    kind, value = steps[i]
    if kind == "deep":
        return any(
            (value is None or path[k] == value) and _match(steps, i + 1, path, k + 1)
            for k in range(j, len(path))
        )
    if j >= len(path):
        return False
    part = path[j]
    if kind == "key" and (not isinstance(part, str) or part != value):
        return False
    if kind == "index" and (not isinstance(part, int) or part != value):
        return False
    return _match(steps, i + 1, path, j + 1)


def diff(
    production: Any,
    shadow: Any,
    ignore: tuple[JsonPattern, ...] = (),
    limit: int = DEFAULT_MAX_DIFFERENCES,
) -> list[JsonDifference]:
    """Differences between two parsed documents, in document order, at most `limit`."""
    found: list[JsonDifference] = []
    stack: list[JsonDifference] = [((), production, shadow)]
    while stack and len(found) < limit:
        path, left, right = stack.pop()
        if ignore and any(pattern.matches(path) for pattern in ignore):
            continue
        kind = _kind(left)
        if kind != _kind(right):
            found.append((path, left, right))
        elif kind == "object":
            keys = list(left) + [key for key in right if key not in left]
            stack.extend(
                ((*path, key), left.get(key, MISSING), right.get(key, MISSING))
                for key in reversed(keys)
            )
        elif kind == "array":
            size = max(len(left), len(right))
            stack.extend(
                (
                    (*path, i),
                    left[i] if i < len(left) else MISSING,
                    right[i] if i < len(right) else MISSING,
                )
                for i in reversed(range(size))
            )
        elif left != right:
            found.append((path, left, right))
    return found
