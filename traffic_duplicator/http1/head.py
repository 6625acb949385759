"""A request head: its grammar, its parsed form, and where its body ends (RFC 9112 sections 2-6).

The proxy relays a request's bytes to the app untouched and frames them on its own to copy
whole requests to the mirrors. Where the app's server and this framer could read a request's
end differently, a mirror could receive a request production never processed (request
smuggling, RFC 9112 section 11.2). So anything a server may legitimately read in more than
one way is refused here with a `FramingError` naming the reason, and mirroring stops:

- Content-Length together with Transfer-Encoding, Transfer-Encoding in HTTP/1.0, several
  Transfer-Encoding fields, and any coding list but a single `chunked` (section 6.1);
- a Content-Length that is not one decimal number. RFC 9112 section 6.3 item 5 lets a
  recipient read a list of identical values ("5, 5", or the field twice) as that one
  value, but RFC 9110 section 8.6 equally lets it reject the message, and nginx and Node
  do (400): the app may never process such a request, so it is not mirrored either;
- whitespace before a colon, obs-fold, a bare CR or a bare LF (sections 2.2, 5.1, 5.2),
  which some servers repair and others reject.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from traffic_duplicator.http1.reasons import FramingError

TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VALUE = rb"[\t\x20-\x7e\x80-\xff]*"  # field-value: VCHAR, obs-text, SP, HTAB; no CR, LF or NUL
# The whole head is validated by one regex, in C: per-line Python work is the proxy's cost.
_HEAD = re.compile(
    rb"(%s) ([\x21-\x7e\x80-\xff]+) (HTTP/1\.[0-9])\r\n((?:%s:%s\r\n)*)\r\n"
    % (TOKEN, TOKEN, _VALUE)
)
_REQUEST_LINE = re.compile(rb"%s [\x21-\x7e\x80-\xff]+ HTTP/1\.[0-9]" % TOKEN)
FIELD_LINE = re.compile(TOKEN + b":" + _VALUE)
_SPACE_BEFORE_COLON = re.compile(TOKEN + rb"[ \t]+:")
# The headers that frame a request, found in one pass over the lower-cased block (a CRLF
# in front of it). Three times faster than a substring search per name, and most
# requests have none of them. _HEAD has already refused CRs inside values.
_FRAMING_HEADERS = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection|expect|upgrade):([^\r]*)"
)
MAX_CONTENT_LENGTH_DIGITS = 18  # below 2**63: no server overflows before we do


@dataclass(slots=True, eq=False)
class RequestHead:
    """A parsed request head; names and values are kept exactly as sent."""

    method: bytes
    target: bytes
    version: bytes
    block: bytes  # the field lines, each ending in CRLF
    content_length: int
    chunked: bool
    close: bool  # the client will close after this request (or HTTP/1.0 default)
    upgrade: bool  # CONNECT, or Connection: upgrade with an Upgrade field
    expect_continue: bool
    _headers: list[tuple[bytes, bytes]] | None = field(default=None, init=False)

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """(name, value) pairs in order; parsed on first use, since the proxy never needs them."""
        if self._headers is None:
            pairs = []
            for line in self.block.split(b"\r\n")[:-1]:
                name, _, value = line.partition(b":")
                pairs.append((name, value.strip(b" \t")))
            self._headers = pairs
        return self._headers

    def get(self, name: bytes) -> bytes | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def values(self, name: bytes) -> list[bytes]:
        """Every value of header `name` (case-insensitive), in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def __repr__(self) -> str:
        return f"RequestHead({self.method!r}, {self.target!r}, {self.version!r})"


def parse_head(raw: bytes) -> RequestHead:
    """Parse a request head (request line to blank line) or raise FramingError.

    Body framing follows RFC 9112 section 6.3 for requests: chunked, else Content-Length,
    else no body; every ambiguous case in the module docstring is an error.
    """
    match = _HEAD.fullmatch(raw)
    if match is None:
        raise head_problem(raw)
    method, target, version, block = match.groups()
    found = _FRAMING_HEADERS.findall(b"\r\n" + block.lower())
    if not found:
        close = version == b"HTTP/1.0"
        return RequestHead(
            method, target, version, block, 0, False, close, method == b"CONNECT", False
        )
    lengths: list[bytes] = []
    codings: list[bytes] = []
    tokens: set[bytes] = set()
    expect_continue = has_upgrade = False
    for name, value in found:
        if name == b"connection":  # the most frequent (keep-alive, close)
            # A plain loop: a generator here cost three times the loop's time (CPython 3.13).
            for token in value.split(b","):
                tokens.add(token.strip(b" \t"))
        elif name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            codings.append(value)
        elif name == b"expect":
            expect_continue = expect_continue or value.strip(b" \t") == b"100-continue"
        else:
            has_upgrade = True
    content_length, chunked = request_body(lengths, codings, version)
    close = b"close" in tokens or (version == b"HTTP/1.0" and b"keep-alive" not in tokens)
    upgrade = method == b"CONNECT" or (b"upgrade" in tokens and has_upgrade)
    return RequestHead(
        method, target, version, block, content_length, chunked, close, upgrade, expect_continue
    )


def request_body(lengths: list[bytes], codings: list[bytes], version: bytes) -> tuple[int, bool]:
    """(Content-Length, chunked) from the lower-cased values of those fields, in order.

    Raises FramingError for every reading a server may make differently (RFC 9112 6.1, 6.3).
    """
    if codings:
        if lengths:
            raise FramingError("cl_and_te")
        if version == b"HTTP/1.0":
            raise FramingError("te_http10")
        if len(codings) > 1:
            raise FramingError("te_repeated")
        if codings[0].strip(b" \t") != b"chunked":
            raise FramingError("te_not_chunked")
        return 0, True
    if not lengths:
        return 0, False
    if len(lengths) > 1:
        raise FramingError("cl_invalid", "Content-Length repeated")
    value = lengths[0].strip(b" \t")
    if not value.isdigit() or len(value.lstrip(b"0")) > MAX_CONTENT_LENGTH_DIGITS:
        raise FramingError("cl_invalid")
    return int(value), False


def head_problem(raw: bytes) -> FramingError:
    """Why `raw` (a head ending in CRLF CRLF) does not match the grammar: the slow path."""
    lines = raw[:-4].split(b"\r\n")
    problem = line_problem(lines[0])
    if problem is None and _REQUEST_LINE.fullmatch(lines[0]) is None:
        problem = "request_line"
    for line in lines[1:]:
        if problem is not None:
            break
        problem = field_problem(line)
    return FramingError(problem or "field_syntax")


def line_problem(line: bytes) -> str | None:
    """A stray CR or LF inside a line (CRLF already removed), or None."""
    if b"\n" in line:
        return "bare_lf"
    if b"\r" in line:
        return "bare_cr"
    return None


def field_problem(line: bytes) -> str | None:
    """Why a field line (CRLF removed) is not `name:value`, or None when it is."""
    if FIELD_LINE.fullmatch(line) is not None:
        return None
    problem = line_problem(line)
    if problem is not None:
        return problem
    if line[:1] in (b" ", b"\t"):
        return "obs_fold"
    if _SPACE_BEFORE_COLON.match(line) is not None:
        return "space_before_colon"
    return "field_syntax"
