"""lib/output.sh's output::mask: the build's one secret filter, run as the hooks run it.

Every line the build prints goes through it (rule 6: secrets never reach output). It is
Bash because the first download prints URLs before any Python exists, so it is held here
against traffic_duplicator/redact.py, the run-time rule: whatever redact masks in a URL,
the build masks too.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.support import REPO_ROOT
from traffic_duplicator.redact import mask_text

SECRETS = ("hunter2", "AKIAEXAMPLE", "0123abcdef", "FwoGZXIvYXdz", "t0k3n", "k3y")

LINES = (
    "Downloading https://deploy:hunter2@mirror.example.com/python-3.13.15.tar.zst",
    # A presigned S3 URL: its signature and credentials are in the query.
    "Downloading https://b.s3.amazonaws.com/gor.tar.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20261130&X-Amz-Signature=0123abcdef"
    "&X-Amz-Security-Token=FwoGZXIvYXdz&X-Amz-Expires=300",
    " !     URL: http://ops:hunter2@127.0.0.1:9/gor.tar.gz?token=t0k3n&page=2",
    "uvloop: https://files.example.com/simple/?api_key=k3y",
)


def build_mask(text: str) -> str:
    """`text` through output::mask, in Bash, as bin/compile runs it."""
    done = subprocess.run(
        ["bash", "-c", 'source "$1"; output::mask', "bash", str(REPO_ROOT / "lib/output.sh")],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize("line", LINES)
def test_the_build_masks_what_the_run_time_rule_masks(line: str) -> None:
    masked = build_mask(line + "\n")
    for secret in SECRETS:
        assert secret not in masked
        if secret in line:
            assert secret not in mask_text(line)  # the run-time rule masks it as well


def test_what_is_not_a_secret_stays_as_written() -> None:
    line = (
        "Downloading https://deploy:hunter2@h.example.com/a.tar.gz?X-Amz-Expires=300&page=2"
        "&X-Amz-Signature=0123abcdef"
    )
    assert build_mask(line + "\n") == (
        "Downloading https://deploy:***@h.example.com/a.tar.gz?X-Amz-Expires=300&page=2"
        "&X-Amz-Signature=***\n"
    )
    plain = "-----> Installing Python 3.13.15 (heroku/python's runtime archive)\n"
    assert build_mask(plain) == plain
