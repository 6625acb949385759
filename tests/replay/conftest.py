"""Fixtures for the replayer's tests (defined in helpers.py)."""

from tests.replay.helpers import dest, test_cert, tls_dest

__all__ = ["dest", "test_cert", "tls_dest"]
