"""`--output-http URL[|N|N%]`: where the replayer sends each request, and how.

Every part of the URL is either applied or refused here, with what to write instead, so
nothing is dropped without a word (checked at build and at boot alike):

- scheme: `http` or `https` (certificates verified unless --output-http-skip-verify); none
  means `http`, as in gor;
- userinfo: `user:password` becomes `Authorization: Basic …` on every replayed request, as
  gor 1.x's http_client.go did (percent-decoded, RFC 3986 §3.2.1); shown as `user:***`;
- host and port: where to connect (the scheme's default port if none); Host is set to them
  unless --http-original-host or a Host set by --http-set-header (gor's rule);
- a bare `:PORT`: this machine, `http://127.0.0.1:PORT` (gor 0.x dialled the empty host,
  which Go takes as the local system);
- path: put in front of each request's path; a trailing slash is dropped;
- query and fragment: refused; a query would not be applied (--http-set-param adds
  parameters), a fragment is never sent.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from urllib.parse import SplitResult, unquote, urlsplit

from traffic_duplicator.options.errors import BadValue
from traffic_duplicator.options.values import MAX_PERCENT, Limit, LimitKind, split_limit
from traffic_duplicator.redact import mask_url

DEFAULT_PORTS = {"http": 80, "https": 443}
LOCAL_HOST = "127.0.0.1"  # what a bare :PORT means
_BARE_PORT = re.compile(r":[0-9]+(/.*)?")
_HOST_NAME = re.compile(r"[a-z0-9_.-]+")


@dataclass(frozen=True)
class OutputTarget:
    """An `--output-http` destination: `URL[|N]` or `URL[|N%]`."""

    url: str  # normalised, with a scheme; a password shown as *** (safe to print)
    scheme: str
    host: str  # ASCII (IDNA), an IPv6 address without brackets
    port: int
    path: str  # base path to prefix, "" when the URL has none
    limit: Limit | None
    # The decoded user and password of the URL's userinfo; never printed.
    credentials: tuple[str, str] | None = field(default=None, repr=False)

    @property
    def host_header(self) -> str:
        """The Host value gor sets: the URL's host, with the port only if not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def authorization(self) -> bytes | None:
        """`Basic base64(user:password)` from the userinfo (RFC 7617 §2), or None."""
        if self.credentials is None:
            return None
        user, password = self.credentials
        return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def _with_scheme(url: str) -> str:
    if _BARE_PORT.fullmatch(url):
        return f"http://{LOCAL_HOST}{url}"
    if "://" not in url:
        return "http://" + url.lstrip("/")
    return url


def _credentials(parts: SplitResult, shown: str) -> tuple[str, str] | None:
    """The percent-decoded user and password (RFC 3986 §3.2.1), or None without `@`."""
    userinfo, at, _ = parts.netloc.rpartition("@")
    if not at:
        return None
    user, _, password = userinfo.partition(":")
    if not user and not password:
        raise BadValue(
            f"{shown!r} has an empty user before @; remove the @ or write user:password@"
        )
    return unquote(user), unquote(password)


def _ascii_host(parts: SplitResult, shown: str) -> str:
    host = parts.hostname or ""
    if not host:
        raise BadValue(f"{shown!r} has no host; write e.g. https://staging.example.com")
    if ":" in host:  # an IPv6 literal: urlsplit has checked it
        return host
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_host = ""
    if not _HOST_NAME.fullmatch(ascii_host):
        raise BadValue(f"{shown!r}: {host!r} is not a host name; write e.g. staging.example.com")
    return ascii_host


def _refuse_query_and_fragment(parts: SplitResult, url: str, shown: str) -> None:
    if parts.query or "?" in url:
        raise BadValue(
            f"{shown!r} has a query (?{parts.query}), which would not be applied to replayed "
            "requests; remove it, and add parameters with --http-set-param NAME=VALUE"
        )
    if parts.fragment or "#" in url:
        raise BadValue(
            f"{shown!r} has a fragment (#{parts.fragment}), which is never sent; remove it"
        )


def parse_output_http(text: str) -> OutputTarget:
    """`--output-http URL[|N|N%]`; see the module docstring for each part of the URL.

    Raises BadValue, whose message shows the URL with its password masked.
    """
    try:
        raw, limit = split_limit(text.strip())
    except BadValue:
        raise BadValue(
            f"{mask_url(text.strip())!r}: after the last | comes a limit, N or N% "
            "(e.g. |10 or |25%); write a | inside the URL as %7C"
        ) from None
    if limit is not None and limit.kind is LimitKind.PERCENT and limit.value > MAX_PERCENT:
        raise BadValue(f"{mask_url(text)!r}: a percentage limit on an output is at most 100%")
    url = _with_scheme(raw.strip())
    shown = mask_url(raw.strip())
    if not raw.strip():
        raise BadValue("the URL is empty; write e.g. https://staging.example.com")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadValue(f"{shown!r} is not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BadValue(f"{shown!r} is not an http:// or https:// URL")
    _refuse_query_and_fragment(parts, url, shown)
    credentials = _credentials(parts, shown)
    host = _ascii_host(parts, shown)
    if port == 0:
        raise BadValue(f"{shown!r}: port 0 cannot be connected to; write the port, 1-65535")
    port = port or DEFAULT_PORTS[scheme]
    path = parts.path.rstrip("/")
    normalised = mask_url(f"{scheme}://{parts.netloc}{path}")
    return OutputTarget(normalised, scheme, host, port, path, limit, credentials)
