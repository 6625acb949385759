"""Our Go-regexp emulation against Go's own regexp, on generated patterns.

Needs a Go toolchain (`go` on PATH) to build tests/options/goregex_oracle; skipped without
one. Patterns are drawn from the syntax options files use plus the corners where Python's
`re` and Go's `regexp` differ; for each we compare whether it compiles, whether it matches,
and what `ReplaceAll` gives, byte for byte.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from traffic_duplicator.options import BadValue, compile_go_regex

ORACLE_SOURCE = Path(__file__).parent / "goregex_oracle" / "main.go"
CASES = 1500
TOKENS = [
    *("a", "b", "A", "K", "k", "é", "\u212a", "_", "1", " ", "\n", "-", "{", "}"),
    *(".", "^", "$", "*", "+", "?", "*?", "+?", "{2}", "{1,2}", "{,2}", "{2,}", "{01}", "|"),
    *("(", ")", "(?:", "(?i)", "(?-i)", "(?s)", "(?m)", "(?U)", "(?i:", "(?P<n>", "(?P<1x>"),
    *("[", "]", "[^", "[:alpha:]", "[:^digit:]", "[[:word:]]", "\\d", "\\D", "\\w", "\\W"),
    *("\\s", "\\S", "\\b", "\\B", "\\A", "\\z", "\\Q", "\\E", "\\pL", "\\PL", "\\p{Lu}"),
    *("\\pN", "\\p{^Lu}", "\\x41", "\\x{e9}", "\\012", "\\.", "\\$", "\\\\", "\\n", "\\t"),
    # What Go refuses.
    *("(?=", "\\1", "{1001}", "(?P=n)", "\\x{110000}", "[z-a]", "\\C", "\\Z", "(?#", "(?x)"),
    *("\\", "\\8", "(?-", "(?)"),
]
TEMPLATES = ["-", "$0", "$1", "${1}", "$1x", "$n", "${n}", "$$", "$", "${", "<$1|$2>", "x$1y"]
SUBJECTS = [
    *(b"", b"a", b"abc", b"aAbB", "kK\u212a".encode(), "é1_ b\nc".encode(), b"a\nb\n"),
    *(b"aaa", b"ab12cd", b"{,2}", b"a{01}", b"\xff", b"a\xffb\xe2\x82c", b"A1 b2\tC3"),
]


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    go = shutil.which("go")
    if go is None:
        pytest.skip("no Go toolchain to build the oracle with")
    binary = tmp_path_factory.mktemp("oracle") / "goregex_oracle"
    subprocess.run(
        [go, "build", "-o", str(binary), str(ORACLE_SOURCE)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    yield binary


def ask_go(oracle: Path, cases: list[tuple[str, str, bytes]]) -> list[tuple[bool, bool, bytes]]:
    """(compiles, matches, ReplaceAll) for each case, from Go's regexp."""
    queries = "".join(
        json.dumps(
            {
                "pattern": pattern,
                "template": base64.b64encode(template.encode()).decode(),
                "subject": base64.b64encode(subject).decode(),
            }
        )
        + "\n"
        for pattern, template, subject in cases
    )
    output = subprocess.run(
        [str(oracle)], input=queries, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    answers = [json.loads(line) for line in output.splitlines()]
    return [(not a["error"], a["match"], base64.b64decode(a["replaced"] or "")) for a in answers]


def ask_us(pattern: str, template: str, subject: bytes) -> tuple[bool, bool, bytes]:
    try:
        regex = compile_go_regex(pattern)
    except BadValue:
        return False, False, b""
    return True, regex.search(subject), regex.replace_all(subject, template.encode())


def test_generated_patterns_behave_as_in_go(oracle: Path) -> None:
    rng = random.Random(9)  # fixed: a failure reproduces
    cases = [
        (
            "".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 7))),
            rng.choice(TEMPLATES),
            rng.choice(SUBJECTS),
        )
        for _ in range(CASES)
    ]
    differ = [
        (case, go, ours)
        for case, go in zip(cases, ask_go(oracle, cases))
        if (ours := ask_us(*case)) != go
    ]
    assert differ == []
