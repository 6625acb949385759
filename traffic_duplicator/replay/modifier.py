"""GoReplay's filters and rewrites applied to one request: pure, and in gor's order.

The order matters and follows gor 1.x: method filter, set headers, set params, URL allow
and disallow (on the target after set-param), header allow (a request without the header
is dropped) and disallow, basic-auth filter, header and param hash limiters, then the
first matching URL rewrite and the header rewrites.
"""

from __future__ import annotations

import enum

from traffic_duplicator.options import decode_basic_auth, go_replace_all
from traffic_duplicator.replay.config import ModifierConfig
from traffic_duplicator.replay.limits import hash_sampled
from traffic_duplicator.replay.request import HeadEditor, Request, query_param, set_query_param


class Verdict(enum.Enum):
    """Why a request was not replayed; counted in the stats as `filtered`."""

    METHOD = "method"
    URL = "url"
    HEADER = "header"
    BASIC_AUTH = "basic-auth"
    SAMPLE = "sample"


class Modifier:
    """Applies a ModifierConfig; `apply` returns the request to send, or a Verdict."""

    def __init__(self, config: ModifierConfig) -> None:
        self.config = config
        self.active = config.active
        self._methods = frozenset(config.methods)
        self._headers = [(h.name.encode(), h.value.encode()) for h in config.set_headers]
        self._params = [(n.encode(), v.encode()) for n, v in config.set_params]

    def apply(self, request: Request) -> Request | Verdict:
        if not self.active:
            return request
        if self._methods and request.method not in self._methods:
            return Verdict.METHOD
        edit = HeadEditor(request.head)
        for name, value in self._headers:
            edit.set(name, value)
        for pname, pvalue in self._params:
            edit.set_target(set_query_param(edit.target, pname, pvalue))
        verdict = (
            self._url_verdict(edit.target)
            or self._header_verdict(edit)
            or self._auth_verdict(edit)
            or self._sample_verdict(edit)
        )
        if verdict is not None:
            return verdict
        self._rewrite(edit)
        if not edit.changed:
            return request
        return Request(
            edit.render(),
            request.body,
            request.method,
            request.received_ns,
            request.message_id,
            request.close,
        )

    def _url_verdict(self, target: bytes) -> Verdict | None:
        """--http-allow-url (any may match) and --http-disallow-url (none may)."""
        cfg = self.config
        if cfg.allow_urls and not any(r.search(target) for r in cfg.allow_urls):
            return Verdict.URL
        if any(r.search(target) for r in cfg.disallow_urls):
            return Verdict.URL
        return None

    def _header_verdict(self, edit: HeadEditor) -> Verdict | None:
        """A missing header fails an allow filter; a present, matching one a disallow filter."""
        for rule in self.config.allow_headers:
            found = edit.get(rule.name.encode())
            if not found or not rule.regex.search(found):
                return Verdict.HEADER
        for rule in self.config.disallow_headers:
            found = edit.get(rule.name.encode())
            if found and rule.regex.search(found):
                return Verdict.HEADER
        return None

    def _auth_verdict(self, edit: HeadEditor) -> Verdict | None:
        """Basic credentials, when present, must match every --http-basic-auth-filter."""
        filters = self.config.basic_auth
        if not filters:
            return None
        credentials = decode_basic_auth(edit.get(b"Authorization") or b"")
        if credentials is not None and not all(r.search(credentials) for r in filters):
            return Verdict.BASIC_AUTH
        return None

    def _sample_verdict(self, edit: HeadEditor) -> Verdict | None:
        """The hash limiters keep a request whose header or parameter is absent."""
        for limit in self.config.header_limits:
            found = edit.get(limit.name.encode())
            if found and not hash_sampled(found, limit.percent):
                return Verdict.SAMPLE
        for limit in self.config.param_limits:
            value = query_param(edit.target, limit.name.encode())
            if value is not None and not hash_sampled(value, limit.percent):
                return Verdict.SAMPLE
        return None

    def _rewrite(self, edit: HeadEditor) -> None:
        """The first matching URL rewrite, then every header rewrite whose header matches."""
        target = edit.target
        for rewrite in self.config.url_rewrites:
            if rewrite.regex.search(target):
                edit.set_target(go_replace_all(rewrite.regex, rewrite.target, target))
                break
        for header_rewrite in self.config.header_rewrites:
            name = header_rewrite.name.encode()
            found = edit.get(name)
            if found and header_rewrite.regex.search(found):
                edit.set(name, go_replace_all(header_rewrite.regex, header_rewrite.target, found))
