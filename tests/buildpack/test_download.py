"""lib/utils.sh's checked download and sha256 helpers, which GoReplay's archive and the
uvloop wheel share: real files, real curl, a file server on 127.0.0.1.

utils::download_verified URL DEST SHA256 CACHE_DIR returns 0 (DEST holds the file), 1 (the
download failed: TD_DOWNLOAD_KIND and TD_DOWNLOAD_PROBLEM say how) or 2 (checksum
mismatch: TD_DOWNLOAD_SHA256 is what arrived), and never leaves a temporary file behind.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.buildpack.conftest import RuntimeServer
from tests.support import REPO_ROOT

BODY = b"a release archive, as far as this test cares\n" * 64
BODY_SHA256 = hashlib.sha256(BODY).hexdigest()
FAST_CURL = {
    "TRAFFIC_DUPLICATOR_CURL_CONNECT_TIMEOUT": "2",
    "TRAFFIC_DUPLICATOR_CURL_MAX_TIME": "10",
    "TRAFFIC_DUPLICATOR_CURL_RETRIES": "0",
}
REPORT = (
    'echo "status=${status}"; echo "kind=${TD_DOWNLOAD_KIND}"; '
    'echo "problem=${TD_DOWNLOAD_PROBLEM}"; echo "sha256=${TD_DOWNLOAD_SHA256}"'
)


@pytest.fixture(scope="module")
def server() -> Iterator[RuntimeServer]:
    files = RuntimeServer({"archive.tar.gz": BODY}).start()
    try:
        yield files
    finally:
        files.stop()


def _bash(snippet: str, *args: str) -> str:
    """Runs a snippet with lib/output.sh and lib/utils.sh sourced, as the hooks source them."""
    script = "set -euo pipefail\n" + "".join(
        f'source "{REPO_ROOT}/lib/{name}.sh"\n' for name in ("output", "utils")
    )
    done = subprocess.run(
        ["bash", "-c", script + snippet, "bash", *args],
        env={"PATH": "/usr/bin:/bin", **FAST_CURL},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def _download_verified(url: str, dest: Path, sha256: str, cache: Path) -> dict[str, str]:
    out = _bash(
        f'status=0; utils::download_verified "$@" || status=$?; {REPORT}',
        url, str(dest), sha256, str(cache),
    )  # fmt: skip
    return dict(line.split("=", 1) for line in out.splitlines())


def _left_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def test_a_file_with_the_expected_sha256_takes_its_name(
    tmp_path: Path, server: RuntimeServer
) -> None:
    dest = tmp_path / "archives" / f"{BODY_SHA256}.tar.gz"
    dest.parent.mkdir()

    got = _download_verified(server.url("archive.tar.gz"), dest, BODY_SHA256, tmp_path / "cache")

    assert got["status"] == "0"
    assert got["sha256"] == BODY_SHA256
    assert dest.read_bytes() == BODY
    assert _left_in(dest.parent) == [dest.name], "no .unverified or .partial file is left"


def test_a_checksum_mismatch_keeps_nothing_and_names_what_arrived(
    tmp_path: Path, server: RuntimeServer
) -> None:
    dest = tmp_path / "archives" / "expected.tar.gz"
    dest.parent.mkdir()

    got = _download_verified(server.url("archive.tar.gz"), dest, "0" * 64, tmp_path / "cache")

    assert got["status"] == "2"
    assert got["sha256"] == BODY_SHA256
    assert _left_in(dest.parent) == []


def test_a_missing_file_is_a_failed_download_not_a_mismatch(
    tmp_path: Path, server: RuntimeServer
) -> None:
    dest = tmp_path / "archives" / "expected.tar.gz"
    dest.parent.mkdir()

    got = _download_verified(server.url("missing.tar.gz"), dest, BODY_SHA256, tmp_path / "cache")

    assert got == {
        "status": "1",
        "kind": "http",
        "problem": "the server answered HTTP 404",
        "sha256": "",
    }
    assert _left_in(dest.parent) == []


def test_an_unreachable_server_is_a_failed_download(tmp_path: Path) -> None:
    dest = tmp_path / "archives" / "expected.tar.gz"
    dest.parent.mkdir()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/archive.tar.gz"
        got = _download_verified(url, dest, BODY_SHA256, tmp_path / "cache")

    assert got["status"] == "1"
    assert got["kind"] == "unreachable"
    assert got["problem"].startswith("the server could not be reached")
    assert _left_in(dest.parent) == []


def test_sha256_of_a_file_or_stdin_and_the_cache_check(tmp_path: Path) -> None:
    archive = tmp_path / "archive.tar.gz"
    archive.write_bytes(BODY)
    (tmp_path / "empty").write_bytes(b"")
    empty_sha256 = hashlib.sha256(b"").hexdigest()

    out = _bash(
        'utils::sha256 "$1"; printf "%s" "$2" | utils::sha256\n'
        'for file in "$1" "$3" "$4"; do\n'
        '  for sha in "$5" "$6"; do\n'
        '    utils::sha256_matches "$file" "$sha" && echo yes || echo no\n'
        "  done\n"
        "done",
        str(archive), "a URL", str(tmp_path / "empty"), str(tmp_path / "absent"),
        BODY_SHA256, empty_sha256,
    )  # fmt: skip

    assert out.splitlines() == [
        BODY_SHA256,
        hashlib.sha256(b"a URL").hexdigest(),
        "yes", "no",  # the archive
        "no", "no",  # an empty file is never a good cached download
        "no", "no",  # nor is a file that is not there
    ]  # fmt: skip
