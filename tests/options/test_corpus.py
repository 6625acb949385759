"""Real-world options files, as people write them, parse and validate."""

from __future__ import annotations

import pytest

from tests.options.helpers import CORPUS
from traffic_duplicator.options import (
    parse_options,
    validate_options_file,
)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_parses_and_validates(name: str) -> None:
    options = parse_options(CORPUS[name])
    validate_options_file(options)
    assert options.outputs()
    assert all(f.builtin_supported for f in options.flags)
