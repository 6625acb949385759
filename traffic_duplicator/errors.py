"""Typed errors for a user's mistakes; only command-line entry points turn them into exits."""

from __future__ import annotations

from traffic_duplicator.redact import mask_text

# Exit status for a usage or configuration error, as argparse and GoReplay use.
USAGE_EXIT_STATUS = 2


class UserError(Exception):
    """A mistake the user can fix: printed as one line, never as a traceback.

    The message is masked (redact.mask_text) here, once for every kind: it quotes what the
    user wrote (a URL, a setting's value), and that may hold a password or a credential.
    """

    exit_status = USAGE_EXIT_STATUS

    def __init__(self, *args: object) -> None:
        masked = (mask_text(arg) if isinstance(arg, str) else arg for arg in args)
        super().__init__(*masked)


class AddressError(UserError):
    """A HOST:PORT or port that cannot be parsed."""


class PortInUseError(UserError):
    """A port we must listen on is already taken."""
