"""Reading logfmt: the inverse of traffic_duplicator.logs.logfmt."""

from __future__ import annotations

_ESCAPES = {"n": "\n", '"': '"', "\\": "\\"}


def parse_logfmt(text: str) -> dict[str, str]:
    """`key=value` pairs (values may be double-quoted with `\\"`, `\\\\`, `\\n` escapes).

    A bare `key` means `key=true`. Raises ValueError on an unterminated quoted value.
    """
    fields: dict[str, str] = {}
    pos, size = 0, len(text)
    while pos < size:
        while pos < size and text[pos] == " ":
            pos += 1
        start = pos
        while pos < size and text[pos] not in " =":
            pos += 1
        key = text[start:pos]
        if pos < size and text[pos] == "=":
            value, pos = _value(text, pos + 1)
        else:
            value = "true"
        if key:
            fields[key] = value
    return fields


def _value(text: str, pos: int) -> tuple[str, int]:
    if pos < len(text) and text[pos] == '"':
        out: list[str] = []
        pos += 1
        while pos < len(text):
            char = text[pos]
            if char == '"':
                return "".join(out), pos + 1
            if char == "\\" and pos + 1 < len(text):
                pos += 1
                out.append(_ESCAPES.get(text[pos], "\\" + text[pos]))
            else:
                out.append(char)
            pos += 1
        raise ValueError("unterminated quoted value")
    end = text.find(" ", pos)
    end = len(text) if end < 0 else end
    return text[pos:end], end
