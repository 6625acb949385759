"""One child's pieces: state transitions, exit statuses, and the prefixing output pump."""

from __future__ import annotations

import os
import tempfile

import pytest

from traffic_duplicator.wrapper.output import MAX_LINE, LinePump
from traffic_duplicator.wrapper.process import (
    Child,
    ChildSpec,
    ChildState,
    exit_status,
    signal_name,
)


def spec() -> ChildSpec:
    return ChildSpec("replayer", ("true",), {}, 5002, prefix_output=True)


def test_impossible_transitions_are_refused() -> None:
    child = Child(spec())
    with pytest.raises(RuntimeError, match="stopped -> stopping is not allowed"):
        child.change(ChildState.STOPPING)
    child.change(ChildState.RUNNING)
    child.change(ChildState.BACKOFF)
    child.change(ChildState.STOPPED)
    child.change(ChildState.EXITED)
    with pytest.raises(RuntimeError):
        child.change(ChildState.RUNNING)


def test_exit_statuses_read_as_a_shell_reports_them() -> None:
    assert exit_status(3 << 8) == 3
    assert exit_status(9) == 137  # killed by SIGKILL
    assert signal_name(137) == "SIGKILL"
    assert signal_name(143) == "SIGTERM"
    assert signal_name(3) is None


def pump(data: bytes) -> bytes:
    """Run bytes through a LinePump from a real pipe into a file and return what came out."""
    source_r, source_w = os.pipe()
    with tempfile.TemporaryFile() as out:
        thread = LinePump(os.fdopen(source_r, "rb"), out.fileno(), "replayer | ")
        thread.start()
        with os.fdopen(source_w, "wb") as writer:
            writer.write(data)
        thread.join(5)
        assert not thread.is_alive()
        out.seek(0)
        return out.read()


def test_every_line_gets_the_prefix_and_bad_bytes_are_replaced() -> None:
    out = pump(b"at=start pid=1\n\xff\xfe broken\nno newline at the end")
    assert out.decode().splitlines() == [
        "replayer | at=start pid=1",
        "replayer | \ufffd\ufffd broken",
        "replayer | no newline at the end",
    ]
    assert out.endswith(b"\n")


def test_an_engines_line_is_masked_on_its_way() -> None:
    # What a real gor prints of its own settings: the output URL as it was given.
    out = pump(b"[HTTPClient] Connecting: http://mirror:hunter2@staging.example.com\n")
    assert out == b"replayer | [HTTPClient] Connecting: http://mirror:***@staging.example.com\n"


def test_an_endless_line_is_passed_on_in_bounded_pieces() -> None:
    out = pump(b"x" * (MAX_LINE * 2 + 10) + b"\n")
    lines = out.decode().splitlines()
    assert [len(line) for line in lines] == [
        len("replayer | ") + n for n in (MAX_LINE, MAX_LINE, 10)
    ]
