"""Typed errors for a user's mistakes; only command-line entry points turn them into exits."""

from __future__ import annotations

# Exit status for a usage or configuration error, as argparse and GoReplay use.
USAGE_EXIT_STATUS = 2


class UserError(Exception):
    """A mistake the user can fix: printed as one line, never as a traceback."""

    exit_status = USAGE_EXIT_STATUS


class AddressError(UserError):
    """A HOST:PORT or port that cannot be parsed."""


class PortInUseError(UserError):
    """A port we must listen on is already taken."""
