"""A captured request, kept as its exact bytes, and a head editor used only when a flag asks.

Replay must not change a byte the user did not ask to change, so the request travels as
the raw head and raw body (chunk framing included). Edits parse the head into lines,
change what they must, and serialise it again; untouched header lines keep their bytes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

CRLF = b"\r\n"


@dataclass(slots=True)
class Request:
    """One request to replay: raw head (to the blank line) and raw body."""

    head: bytes
    body: bytes
    method: bytes
    received_ns: int
    message_id: bytes | None = None  # kept from a gor capture, else made up when written
    close: bool = False  # the request asks to close its connection (or is HTTP/1.0)
    # The target before a rewrite changed it, kept only when comparing (routes name it).
    original_target: bytes | None = None

    @property
    def data(self) -> bytes:
        return self.head + self.body


class HeadEditor:
    """The request line and header lines of a head, editable; `render()` gives bytes."""

    __slots__ = ("changed", "lines", "method", "target", "version")

    def __init__(self, head: bytes) -> None:
        lines = head.split(CRLF)
        while lines and lines[-1] == b"":
            lines.pop()
        self.method, self.target, self.version = lines[0].split(b" ", 2)
        self.lines = lines[1:]
        self.changed = False

    def _index(self, name: bytes) -> int:
        wanted = name.lower()
        for index, line in enumerate(self.lines):
            key, _, _ = line.partition(b":")
            if key.strip().lower() == wanted:
                return index
        return -1

    def get(self, name: bytes) -> bytes | None:
        """The first value of header `name`, trimmed, or None."""
        index = self._index(name)
        if index < 0:
            return None
        return self.lines[index].partition(b":")[2].strip(b" \t")

    def set(self, name: bytes, value: bytes) -> None:
        """Replace the first `name` header's value (keeping its spelling), or add one first.

        A new header goes right after the request line, as gor's proto.AddHeader puts it
        ("to the start of headers section"), so several new headers end up in reverse.
        """
        index = self._index(name)
        if index < 0:
            self.lines.insert(0, name + b": " + value)
        else:
            original = self.lines[index].partition(b":")[0]
            self.lines[index] = original + b": " + value
        self.changed = True

    def set_target(self, target: bytes) -> None:
        if target != self.target:
            self.target = target
            self.changed = True

    def render(self) -> bytes:
        request_line = b" ".join((self.method, self.target, self.version))
        return CRLF.join([request_line, *self.lines]) + CRLF + CRLF


def query_param(target: bytes, name: bytes) -> bytes | None:
    """The raw value of query parameter `name` in a request target, or None."""
    _, question, query = target.partition(b"?")
    if not question:
        return None
    for pair in query.split(b"&"):
        key, _, value = pair.partition(b"=")
        if key == name:
            return value
    return None


def set_query_param(target: bytes, name: bytes, value: bytes) -> bytes:
    """Set `name=value` in the query, replacing the first existing value, as gor does."""
    path, question, query = target.partition(b"?")
    if not question:
        return path + b"?" + name + b"=" + value
    pairs = query.split(b"&") if query else []
    for index, pair in enumerate(pairs):
        if pair.partition(b"=")[0] == name:
            pairs[index] = name + b"=" + value
            break
    else:
        pairs.append(name + b"=" + value)
    return path + b"?" + b"&".join(pairs)


@functools.lru_cache(maxsize=16)
def _header_line(name: bytes) -> re.Pattern[bytes]:
    return re.compile(rb"\r\n" + re.escape(name) + rb"[ \t]*:[^\r\n]*", re.IGNORECASE)


def with_header(head: bytes, name: bytes, value: bytes) -> bytes:
    """The head with the first `name` header's value replaced, keeping the name's spelling,
    or the header added right after the request line: gor's proto.SetHeader and AddHeader."""
    match = _header_line(name).search(head)
    if match is None:
        end_of_request_line = head.index(CRLF) + 2
        line = name + b": " + value + CRLF
        return head[:end_of_request_line] + line + head[end_of_request_line:]
    line = match.group(0)
    spelling = line[2:].partition(b":")[0].rstrip(b" \t")
    return head[: match.start()] + CRLF + spelling + b": " + value + head[match.end() :]


def with_host(head: bytes, host: bytes) -> bytes:
    """The head with its Host header's value replaced (or a Host header added first)."""
    return with_header(head, b"Host", host)


_ABSOLUTE_FORM = re.compile(rb"[A-Za-z]+ (?P<authority>https?://[^/?# ]*)(?P<rest>[^ ]*) ", re.I)


def to_origin_form(head: bytes) -> bytes:
    """An absolute-form target (`GET http://host/a?b HTTP/1.1`) in origin form (`/a?b`).

    RFC 9112 §3.2.2: a server takes the authority of an absolute-form target over Host, so
    the destination would be told it is production; gor points such requests at the output
    too (goreplay #156). An empty path becomes `/` (RFC 9112 §3.2.1). Other heads unchanged.
    """
    match = _ABSOLUTE_FORM.match(head)
    if match is None:
        return head
    rest = match.group("rest")
    if not rest.startswith(b"/"):
        rest = b"/" + rest
    return head[: match.start("authority")] + rest + head[match.end("rest") :]


def with_target_prefix(head: bytes, prefix: bytes) -> bytes:
    """Prefix an origin-form target with an output URL's base path."""
    first_space = head.find(b" ")
    if first_space < 0 or head[first_space + 1 : first_space + 2] != b"/":
        return head
    return head[: first_space + 1] + prefix + head[first_space + 1 :]
