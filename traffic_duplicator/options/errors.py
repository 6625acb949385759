"""The two errors of the options package: a bad value (no position yet) and a located mistake."""

from __future__ import annotations

from traffic_duplicator.errors import UserError


class OptionsError(UserError):
    """A mistake in GoReplay options; the message is one line naming where and the fix."""


class BadValue(ValueError):
    """A flag value that cannot be used; the message says what is expected."""
