"""HTTP/1.x as both engines read it: request framing, body scanners, and response ends.

- `head`: a request head's grammar and body length (RFC 9112 sections 2-6);
- `body`: where a body of known length or of chunks ends (sections 6, 7.1);
- `framer`: a client's byte stream split into requests, as events;
- `response`: where a response ends (section 6.3), for the proxy and the replayer;
- `reasons`: why bytes stopped being framed, a closed vocabulary.
"""

from traffic_duplicator.http1.body import ChunkedScanner, LengthScanner
from traffic_duplicator.http1.framer import (
    BODY,
    DEFAULT_MAX_HEAD,
    END,
    END_EVENT,
    HEAD,
    OPAQUE,
    Event,
    RequestFramer,
)
from traffic_duplicator.http1.head import RequestHead, parse_head
from traffic_duplicator.http1.reasons import EXPECTED, REASONS, FramingError

__all__ = [
    "BODY",
    "DEFAULT_MAX_HEAD",
    "END",
    "END_EVENT",
    "EXPECTED",
    "HEAD",
    "OPAQUE",
    "REASONS",
    "ChunkedScanner",
    "Event",
    "FramingError",
    "LengthScanner",
    "RequestFramer",
    "RequestHead",
    "parse_head",
]
