"""Real servers (gunicorn, Node, nginx) read what we mirror as we do, and refuse or differ
on everything we refuse: the table in the README comes from `tests.http1.families`."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http1 import families
from tests.http1.test_ambiguous import CASES, our_requests


@pytest.fixture(scope="module")
def outcomes() -> dict[str, dict[str, str]]:
    return families.table(families.available())


@pytest.fixture(params=families.available())
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    with tempfile.TemporaryDirectory() as tmp, families.FAMILIES[request.param](Path(tmp)) as port:
        yield request.param, port


def test_what_we_frame_every_server_reads_the_same_way(server: tuple[str, int]) -> None:
    family, port = server
    stream = b"".join(families.CONTROLS)
    framed, opaque = our_requests(stream)
    assert framed == families.CONTROLS and not opaque
    replies = families.control_replies(port)
    assert [status for status, _ in replies] == [200] * len(families.CONTROLS), replies
    for index, (_, body) in enumerate(replies):
        words = body.split()
        assert words[1] == f"/c/{index + 1}".encode(), (family, body)
        if family != "nginx":  # nginx's answer does not carry the body length
            assert int(words[2]) == families.CONTROL_BODIES[index], (family, body)


def verdict(cell: str) -> tuple[str, bool]:
    """An outcome as (status, whether the smuggled request was processed)."""
    return cell.split(maxsplit=1)[0], cell.endswith("then /smuggled")


@pytest.mark.parametrize("case", [case for case, _, _ in CASES])
def test_each_request_we_refuse_is_refused_or_read_differently_by_a_server(
    outcomes: dict[str, dict[str, str]], case: str
) -> None:
    """Not mirroring is right when production may refuse it, or servers disagree on it."""
    cells = outcomes[case]
    refused = any(verdict(cell)[0] != "200" for cell in cells.values())
    disagree = len({verdict(cell) for cell in cells.values()}) > 1
    assert refused or disagree, cells
