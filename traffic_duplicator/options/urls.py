"""`--output-http URL[|N|N%]`: where the replayer sends each request, and how."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from traffic_duplicator.options.errors import BadValue
from traffic_duplicator.options.values import MAX_PERCENT, Limit, LimitKind, split_limit


@dataclass(frozen=True)
class OutputTarget:
    """An `--output-http` destination: `URL[|N]` or `URL[|N%]`."""

    url: str  # normalised, with a scheme
    scheme: str
    host: str
    port: int
    path: str  # base path to prefix, "" when the URL has none
    limit: Limit | None

    @property
    def host_header(self) -> str:
        """The Host value gor sets: the URL's host, with the port only if not the default."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_output_http(text: str) -> OutputTarget:
    """`--output-http URL[|N|N%]`; a URL without a scheme means http://, as in gor."""
    raw, limit = split_limit(text.strip())
    if limit is not None and limit.kind is LimitKind.PERCENT and limit.value > MAX_PERCENT:
        raise BadValue(f"{text!r}: a percentage limit on an output is at most 100%")
    url = raw.strip()
    if not url:
        raise BadValue("the URL is empty; write e.g. https://staging.example.com")
    if "://" not in url:
        url = "http://" + url.lstrip("/")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadValue(f"{raw!r} is not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadValue(f"{raw!r} is not an http:// or https:// URL")
    host = parts.hostname or ""
    if not host:
        raise BadValue(f"{raw!r} has no host; write e.g. https://staging.example.com")
    if port is None:
        port = 443 if scheme == "https" else 80
    path = parts.path.rstrip("/")
    normalised = f"{scheme}://{parts.netloc}{path}"
    return OutputTarget(normalised, scheme, host, port, path, limit)
