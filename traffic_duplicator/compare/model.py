"""What a comparison knows about one HTTP response: status, headers, a bounded body, a digest.

Both sides use the same record: production's response (recorded by the tee proxy and sent
to the replayer as a GoReplay type `2` message) and a destination's response (read by the
replayer, GoReplay's type `3`). A body longer than the capture limit keeps only its first
bytes, plus the length and SHA-256 digest of the whole body, so that two long bodies can
still be compared for equality without holding them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# The cap on body bytes kept per response (issue 10: "up to a cap (default 64 KiB)").
DEFAULT_BODY_LIMIT = 64 * 1024
# Bookkeeping per stored response, on top of its bytes, for the pending table's byte budget.
RECORD_OVERHEAD = 256

Headers = tuple[tuple[str, str], ...]


# Not frozen: a frozen dataclass's __init__ costs about four times as much, and the tee
# proxy builds one per response with --compare. Treat it as a value all the same
# (dataclasses.replace makes a changed copy).
@dataclass(slots=True)
class CapturedResponse:
    """One response as compared.

    `head` is the status line and header block exactly as received (up to the blank line).
    `body` holds the first body bytes with chunked framing removed but content coding
    (gzip, …) kept; `body_length` is the whole body's length. `digest` is the SHA-256 of
    the whole body: given by the recorder when the body was cut, computed on demand
    otherwise (a body under the cap is never hashed unless a comparison asks).
    `latency` is in seconds; None when the sender did not say.
    """

    status: int
    headers: Headers
    body: bytes
    body_length: int
    head: bytes = b""
    body_digest: str = ""
    chunked: bool = False
    latency: float | None = None

    @property
    def truncated(self) -> bool:
        """True when `body` holds only the start of the body."""
        return self.body_length > len(self.body)

    @property
    def digest(self) -> str:
        """Hex SHA-256 of the whole body."""
        return self.body_digest or hashlib.sha256(self.body).hexdigest()

    @property
    def size(self) -> int:
        """Bytes this record holds, for memory budgets."""
        return len(self.head) + len(self.body) + RECORD_OVERHEAD

    def header(self, name: str) -> str | None:
        """Every value of header `name` (case-insensitive) joined by ", ", or None."""
        wanted = name.lower()
        values = [value for key, value in self.headers if key.lower() == wanted]
        return ", ".join(values) if values else None


def parse_head(head: bytes) -> tuple[int, Headers]:
    """Status code and headers of a response head (status line to blank line).

    Raises ValueError when the status line is not `HTTP/1.x NNN …` (RFC 9112 section 4).
    Header values are decoded as Latin-1, the historical charset of field values
    (RFC 9110 section 5.5), so any byte survives.
    """
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"bad status line {lines[0][:60]!r}")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if colon:
            headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return int(parts[1]), tuple(headers)
