"""The two errors of the options package: a bad value (no position yet) and a located mistake."""

from __future__ import annotations

from traffic_duplicator.errors import UserError
from traffic_duplicator.redact import mask_text


class OptionsError(UserError):
    """A mistake in GoReplay options; the message is one line naming where and the fix.

    The message is masked (redact.mask_text): it quotes what the user wrote, and that may
    hold a URL password or a credential header.
    """

    def __init__(self, message: str) -> None:
        super().__init__(mask_text(message))


class BadValue(ValueError):
    """A flag value that cannot be used; the message says what is expected."""
