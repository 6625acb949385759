"""The Python runtime download: the archive layout, each kind of failure, and the cache."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from tests.buildpack.conftest import Hooks, RuntimeServer
from tests.support import REPO_ROOT, free_port

# Short limits so failure tests finish in about a second; the hooks read these for tests.
FAST_CURL = {
    "TRAFFIC_DUPLICATOR_CURL_CONNECT_TIMEOUT": "2",
    "TRAFFIC_DUPLICATOR_CURL_MAX_TIME": "2",
    "TRAFFIC_DUPLICATOR_CURL_RETRIES": "0",
}


def _bash_lib(snippet: str, **env: str) -> str:
    """Runs a snippet with lib/*.sh sourced, the way bin/compile sources them."""
    script = "set -euo pipefail\n" + "".join(
        f'source "{REPO_ROOT}/lib/{name}.sh"\n' for name in ("output", "utils", "python")
    )
    proc = subprocess.run(
        ["bash", "-c", script + snippet],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return proc.stdout.strip()


def _arch() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.parametrize(
    ("stack", "ubuntu"),
    [("heroku-22", "22.04"), ("heroku-24", "24.04"), ("heroku-26", "26.04"), ("dokku", "24.04")],
)
def test_default_url_follows_heroku_pythons_scheme(stack: str, ubuntu: str) -> None:
    url = _bash_lib(f'python::default_url "{stack}"')
    version = _bash_lib('echo "${TD_PYTHON_VERSION}"')
    assert version.startswith("3.13.")
    assert url == (
        "https://heroku-buildpack-python.s3.us-east-1.amazonaws.com/"
        f"python-{version}-ubuntu-{ubuntu}-{_arch()}.tar.zst"
    )


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd is not installed")
def test_zstd_archive_like_heroku_pythons_installs(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url("python.tar.zst"))

    result = hooks.compile(app, "heroku-24")

    assert result.returncode == 0, result.output
    assert (app.build_dir / ".traffic-duplicator" / "python" / "bin" / "python3").is_file()


def _failed_download(hooks: Hooks, url: str, stack: str = "heroku-24", **env: str) -> str:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", url)
    result = hooks.compile(app, stack, env={**FAST_CURL, **env})
    assert result.returncode == 1, result.output
    runtime = app.build_dir / ".traffic-duplicator" / "python"
    assert not runtime.exists()
    assert not runtime.with_name("python.partial").exists()
    archives = app.cache_dir / "traffic-duplicator" / "python-archives"
    assert not any(archives.iterdir())
    assert f" !     URL: {url}\n" in result.stderr
    assert " !     To fix:\n" in result.stderr
    return result.stderr


def test_unreachable_url_says_the_server_could_not_be_reached(hooks: Hooks) -> None:
    closed_port = free_port()
    url = f"http://127.0.0.1:{closed_port}/python.tar.gz"

    # One retry, to exercise --retry-connrefused as well.
    stderr = _failed_download(hooks, url, TRAFFIC_DUPLICATOR_CURL_RETRIES="1")

    assert "Error: could not download the Python runtime: the server could not be reached" in (
        stderr
    )
    assert "curl said: curl: (7)" in stderr
    assert "(the TRAFFIC_DUPLICATOR_PYTHON_URL config var)" in stderr


def test_missing_archive_says_http_404(hooks: Hooks, runtime_server: RuntimeServer) -> None:
    url = runtime_server.url("no-such-python.tar.zst")

    stderr = _failed_download(hooks, url)

    assert "Error: could not download the Python runtime: there is no archive at that URL" in (
        stderr
    )
    assert "(HTTP 404)" in stderr
    assert "heroku config:get TRAFFIC_DUPLICATOR_PYTHON_URL" in stderr


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_hanging_server_says_the_download_timed_out(hooks: Hooks, silent_server: int) -> None:
    url = f"http://127.0.0.1:{silent_server}/python.tar.gz"

    stderr = _failed_download(hooks, url, TRAFFIC_DUPLICATOR_CURL_MAX_TIME="1")

    assert "Error: could not download the Python runtime: the download timed out" in stderr
    assert "curl said: curl: (28)" in stderr


def test_unresolvable_host_says_dns(hooks: Hooks) -> None:
    # .invalid never resolves (RFC 6761), with or without a network.
    stderr = _failed_download(hooks, "http://python-mirror.invalid/python.tar.gz")

    assert "the host name could not be resolved (DNS)" in stderr


def test_a_file_that_is_not_an_archive_is_refused(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    stderr = _failed_download(hooks, runtime_server.url("garbage.tar.gz"))

    assert "Error: the Python runtime archive is not usable: it is not a tar archive" in stderr


def test_an_archive_without_bin_python3_is_refused(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    stderr = _failed_download(hooks, runtime_server.url("no-python.tar.gz"))

    assert "it has no executable bin/python3 at its top level" in stderr
    assert "./share/README" in stderr


def test_unknown_stack_installs_the_runtime_with_a_warning(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url("python.tar.gz"))

    result = hooks.compile(app, None)

    assert result.returncode == 0, result.output
    assert "(stack: unknown)" in result.stdout
    assert "Installing the Python runtime from TRAFFIC_DUPLICATOR_PYTHON_URL" in result.stdout
    assert (app.build_dir / ".traffic-duplicator" / "python" / "bin" / "python3").is_file()


def test_a_damaged_cached_archive_is_downloaded_again(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url("python.tar.gz"))
    assert hooks.compile(app, "heroku-24").returncode == 0
    (cached,) = (app.cache_dir / "traffic-duplicator" / "python-archives").glob("*.archive")
    cached.write_bytes(b"truncated")
    before = runtime_server.count("python.tar.gz")

    result = hooks.compile(app, "heroku-24")

    assert result.returncode == 0, result.output
    assert "The cached archive is damaged; downloading it again" in result.stdout
    assert runtime_server.count("python.tar.gz") == before + 1


def test_changing_the_url_replaces_the_cached_archive(
    hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    app = hooks.app("node")
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url("python.tar.gz"))
    assert hooks.compile(app, "heroku-24").returncode == 0
    app.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url("python.tar.gz?v=2"))

    result = hooks.compile(app, "heroku-24")

    assert result.returncode == 0, result.output
    assert "Downloading" in result.stdout
    cached = app.cache_dir / "traffic-duplicator" / "python-archives"
    archives = sorted(path.suffix for path in cached.iterdir())
    assert archives == [".archive", ".url"]
