"""Why bytes stopped being framed as HTTP/1.x: a fixed vocabulary, and the error that carries it.

The vocabulary is closed on purpose: the proxy counts unframed connections per reason,
and a bounded set of reasons keeps that table (and the stats line) bounded.
"""

from __future__ import annotations

from typing import Final

# reason -> what it means, with the rule it comes from (RFC 9112 unless stated).
REASONS: Final[dict[str, str]] = {
    # Not faults: the connection stops being HTTP/1.x on purpose.
    "upgrade": "the connection was upgraded (101) or sent bytes before the server answered",
    "connect": "a CONNECT request: the rest is a tunnel",
    # Request framing that servers may read differently (section 6, section 11.2).
    "cl_and_te": "Content-Length together with Transfer-Encoding (RFC 9112 6.1)",
    "te_http10": "Transfer-Encoding in an HTTP/1.0 message (RFC 9112 6.1)",
    "te_not_chunked": "a transfer coding other than one chunked (RFC 9112 6.1)",
    "te_repeated": "several Transfer-Encoding fields (RFC 9112 6.1)",
    "cl_invalid": "Content-Length not one decimal number: a list, a repeat or junk (RFC 9112 6.3)",
    "space_before_colon": "whitespace between a field name and its colon (RFC 9112 5.1)",
    "obs_fold": "a field line folded onto the next (obs-fold, RFC 9112 5.2)",
    "bare_cr": "a CR not followed by LF (RFC 9112 2.2)",
    "bare_lf": "a line ended by LF alone (RFC 9112 2.2)",
    "field_syntax": "a field line that is not name:value (RFC 9112 5)",
    "chunk_syntax": "an invalid chunk size, extension or chunk end (RFC 9112 7.1)",
    "after_close": "bytes after a request that closes the connection (RFC 9112 9.6)",
    "request_line": "not an HTTP/1.x request line (RFC 9112 3)",
    "head_too_large": "a message head over the size limit",
    "status_line": "not an HTTP/1.x status line (RFC 9112 4)",
}

# Reasons that are not faults, only the end of HTTP on a connection: nothing to log.
EXPECTED: Final = frozenset({"upgrade", "connect"})


class FramingError(ValueError):
    """Bytes that cannot be framed as an HTTP/1.x message; `reason` is a key of REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in REASONS, reason
        super().__init__(detail or REASONS[reason])
        self.reason = reason
