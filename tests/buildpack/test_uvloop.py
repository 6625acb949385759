"""uvloop fetched by the build (lib/uvloop.sh): the real wheel for this machine's Python,
served from 127.0.0.1, the cache, every failure path (each one build line, never a failed
build), and the proxy started from the built slug running on uvloop.

The wheel is downloaded once per session from the package index with pip; without the
index these tests are skipped, saying so.
"""

from __future__ import annotations

import hashlib
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.buildpack.conftest import SYSTEM_PYTHON, App, Hooks, RuntimeServer
from tests.support import REPO_ROOT, free_port, running, wait_until

STACK = "heroku-22"  # the build uses the stack's python3: this machine's /usr/bin/python3
WHEEL_DIR = Path(".traffic-duplicator/lib/uvloop-wheel")
FAST_CURL = {
    "TRAFFIC_DUPLICATOR_CURL_CONNECT_TIMEOUT": "2",
    "TRAFFIC_DUPLICATOR_CURL_MAX_TIME": "10",
    "TRAFFIC_DUPLICATOR_CURL_RETRIES": "0",
}
ASYNCIO_LINE = re.compile(r"^ {7}Event loop: asyncio; uvloop 0\.23\.0 not installed: (.+)$", re.M)


def _bash(snippet: str) -> str:
    script = "set -euo pipefail\n" + "".join(
        f'source "{REPO_ROOT}/lib/{name}.sh"\n' for name in ("output", "utils", "uvloop")
    )
    return subprocess.run(
        ["bash", "-c", script + snippet],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()


@dataclass(frozen=True)
class Wheel:
    key: str  # cp311-x86_64
    path: str  # under files.pythonhosted.org/packages/
    sha256: str
    data: bytes


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    """The pinned wheel for this machine's python3, downloaded with pip from the index."""
    probe = _bash(f'"{SYSTEM_PYTHON}" -c "${{TD_UVLOOP_PROBE}}"')
    impl, version, cpu, libc = probe.split()
    key = f"cp{version}-{cpu}"
    pinned = _bash(f'uvloop::wheel_for "{key}" || true')
    if impl != "cpython" or libc != "glibc" or not pinned:
        pytest.skip(f"no uvloop wheel is pinned for {SYSTEM_PYTHON} ({probe})")
    path, sha256 = pinned.split()
    into = tmp_path_factory.mktemp("uvloop-wheel")
    download = [
        sys.executable, "-m", "pip", "download", "--quiet", "uvloop==0.23.0",
        "--only-binary=:all:", "--no-deps", "--implementation", "cp",
        "--platform", f"manylinux_2_17_{cpu}", "--python-version", version,
        "--abi", f"cp{version}", "--dest", str(into),
    ]  # fmt: skip
    try:
        done = subprocess.run(download, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip("the package index did not answer within 300 s: uvloop build tests skipped")
    files = list(into.glob("*.whl"))
    if done.returncode != 0 or not files:
        pytest.skip(
            "could not download the uvloop 0.23.0 wheel from the package index"
            f" (pip said: {done.stderr.strip()[-300:]}): uvloop build tests skipped"
        )
    data = files[0].read_bytes()
    assert files[0].name == path.rsplit("/", 1)[1]
    assert hashlib.sha256(data).hexdigest() == sha256, "the index's wheel is not the pinned one"
    return Wheel(key, path, sha256, data)


@pytest.fixture(scope="module")
def index(wheel: Wheel) -> Iterator[RuntimeServer]:
    """A stand-in for files.pythonhosted.org/packages/ on 127.0.0.1: the real wheel under
    good/, altered bytes under bad/, nothing under missing/."""
    altered = wheel.data[:-100] + b"\0" * 100
    server = RuntimeServer({f"good/{wheel.path}": wheel.data, f"bad/{wheel.path}": altered})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _compile(hooks: Hooks, app: App, base: str, **extra: str) -> str:
    env = {**FAST_CURL, "TRAFFIC_DUPLICATOR_UVLOOP": "", "TRAFFIC_DUPLICATOR_UVLOOP_URL": base}
    built = hooks.compile(app, STACK, env={**env, **extra})
    assert built.returncode == 0, built.output
    return built.stdout


def _asyncio_reason(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if "Event loop:" in line]
    assert len(lines) == 1, stdout
    match = ASYNCIO_LINE.match(lines[0])
    assert match, lines[0]
    return match[1]


def _listening_loop(app: App, **env: str) -> str:
    """Start the proxy from the built slug and return the loop its `listening` line names."""
    lib = app.build_dir / ".traffic-duplicator" / "lib"
    port = free_port()
    argv = [SYSTEM_PYTHON, "-m", "traffic_duplicator.proxy", "-l", f"127.0.0.1:{port}"]
    argv += ["-r", f"127.0.0.1:{free_port()}"]
    log = app.home / f"proxy-{port}.log"
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(lib), **env}
    # From the app directory, as on a dyno (`-m` puts the working directory on the path).
    with log.open("wb") as out, running(argv, env=environment, cwd=app.build_dir, stderr=out):
        wait_until(lambda: b"at=listening" in log.read_bytes(), timeout=20, message="listening")
    match = re.search(r"loop=(\w+)", log.read_text())
    assert match, log.read_text()
    return match[1]


def test_every_pinned_wheel_matches_its_python_and_cpu() -> None:
    keys = _bash('printf "%s\\n" "${!TD_UVLOOP_WHEELS[@]}"').split()
    assert sorted(keys) == sorted(
        f"cp3{minor}-{cpu}" for minor in range(10, 15) for cpu in ("x86_64", "aarch64")
    )
    for key in keys:
        path, sha = _bash(f'uvloop::wheel_for "{key}"').split()
        tag, cpu = key.split("-")
        assert f"-{tag}-{tag}-" in path and path.endswith(f"manylinux_2_28_{cpu}.whl"), path
        assert re.fullmatch(r"[0-9a-f]{64}", sha)


def test_the_build_installs_the_wheel_and_the_slugs_proxy_runs_on_uvloop(
    hooks: Hooks, index: RuntimeServer, wheel: Wheel
) -> None:
    app = hooks.app("python")
    stdout = _compile(hooks, app, index.url("good"))
    cpu = wheel.key.split("-")[1]
    assert f"       Event loop: uvloop 0.23.0 ({wheel.key.split('-')[0]}, {cpu}; downloaded)" in (
        stdout.splitlines()
    ), stdout
    installed = app.build_dir / WHEEL_DIR
    assert (installed / "uvloop" / "__init__.py").is_file()
    assert not list(installed.rglob("*.pyx")), "Cython sources are not needed at run time"
    assert _listening_loop(app) == "uvloop"
    assert _listening_loop(app, TRAFFIC_DUPLICATOR_UVLOOP="0") == "asyncio"


def test_the_app_does_not_see_the_buildpacks_uvloop(hooks: Hooks, index: RuntimeServer) -> None:
    app = hooks.app("python")
    _compile(hooks, app, index.url("good"))
    lib = app.build_dir / ".traffic-duplicator" / "lib"
    # The app inherits PYTHONPATH=.traffic-duplicator/lib from the launcher.
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import uvloop; print(uvloop.__file__)"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(lib)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert str(lib) not in probe.stdout


def test_a_second_build_uses_the_cached_wheel(
    hooks: Hooks, index: RuntimeServer, wheel: Wheel
) -> None:
    app = hooks.app("python")
    path = f"good/{wheel.path}"
    before = index.count(path)
    _compile(hooks, app, index.url("good"))
    assert index.count(path) == before + 1
    stdout = _compile(hooks, app, index.url("good"))
    assert "; from the build cache)" in stdout, stdout
    assert index.count(path) == before + 1
    assert (app.build_dir / WHEEL_DIR / "uvloop").is_dir()


def test_a_damaged_cached_wheel_is_downloaded_again(
    hooks: Hooks, index: RuntimeServer, wheel: Wheel
) -> None:
    app = hooks.app("python")
    _compile(hooks, app, index.url("good"))
    (cached,) = (app.cache_dir / "traffic-duplicator" / "uvloop").glob("*.whl")
    cached.write_bytes(b"truncated")
    stdout = _compile(hooks, app, index.url("good"))
    assert "; downloaded)" in stdout, stdout
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == wheel.sha256


def test_a_checksum_mismatch_leaves_asyncio_and_caches_nothing(
    hooks: Hooks, index: RuntimeServer
) -> None:
    app = hooks.app("python")
    reason = _asyncio_reason(_compile(hooks, app, index.url("bad")))
    assert reason.startswith("checksum mismatch for http://127.0.0.1:")
    assert not (app.build_dir / WHEEL_DIR).exists()
    assert not list((app.cache_dir / "traffic-duplicator").rglob("*.whl"))


def test_a_missing_wheel_leaves_asyncio(hooks: Hooks, index: RuntimeServer) -> None:
    app = hooks.app("python")
    reason = _asyncio_reason(_compile(hooks, app, index.url("missing")))
    assert reason.startswith("the download failed (curl: (22)")
    assert "404" in reason
    assert not (app.build_dir / WHEEL_DIR).exists()


def test_an_unreachable_index_leaves_asyncio(hooks: Hooks) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        app = hooks.app("python")
        reason = _asyncio_reason(_compile(hooks, app, f"http://127.0.0.1:{port}/"))
    assert reason.startswith("the download failed (curl: (7)")
    assert not (app.build_dir / WHEEL_DIR).exists()


def test_a_python_without_a_pinned_wheel_leaves_asyncio(hooks: Hooks, index: RuntimeServer) -> None:
    app = hooks.app("python")
    # The app's own interpreter (as heroku/python installs it), answering the build's
    # question as CPython 3.9 would; everything else runs the real python3.
    python = app.build_dir / ".heroku" / "python" / "bin" / "python3"
    python.parent.mkdir(parents=True)
    python.write_text(
        "#!/bin/sh\n"
        'case "$2" in *sysconfig*) echo "cpython 39 x86_64 glibc"; exit 0 ;; esac\n'
        f'exec {SYSTEM_PYTHON} "$@"\n'
    )
    python.chmod(0o755)
    before = sum(index.count(p) for p in index.files)
    reason = _asyncio_reason(_compile(hooks, app, index.url("good")))
    assert reason.startswith("no wheel for cpython 3.9 on x86_64 (glibc)")
    assert sum(index.count(p) for p in index.files) == before


def test_the_config_var_turns_the_download_off(hooks: Hooks, index: RuntimeServer) -> None:
    app = hooks.app("python")
    _compile(hooks, app, index.url("good"))
    assert (app.build_dir / WHEEL_DIR).is_dir()
    app.set_config("TRAFFIC_DUPLICATOR_UVLOOP", "0")
    stdout = _compile(hooks, app, index.url("good"))
    assert "       Event loop: asyncio (TRAFFIC_DUPLICATOR_UVLOOP=0, uvloop not installed)" in (
        stdout.splitlines()
    )
    assert not (app.build_dir / WHEEL_DIR).exists(), "a previous build's uvloop is removed"


@pytest.mark.parametrize("word", ["off", "False", " no\n"])
def test_every_off_word_of_the_run_time_turns_the_download_off(hooks: Hooks, word: str) -> None:
    # No wheel needed: nothing may be fetched (this index does not even listen).
    app = hooks.app("python")
    app.set_config("TRAFFIC_DUPLICATOR_UVLOOP", word)
    stdout = _compile(hooks, app, f"http://127.0.0.1:{free_port()}/packages")
    said = f"TRAFFIC_DUPLICATOR_UVLOOP={word.strip()}, uvloop not installed"
    line = f"       Event loop: asyncio ({said})"
    assert line in stdout.splitlines(), stdout


def test_an_on_word_asks_for_the_wheel(hooks: Hooks) -> None:
    app = hooks.app("python")
    app.set_config("TRAFFIC_DUPLICATOR_UVLOOP", "yes")
    reason = _asyncio_reason(_compile(hooks, app, f"http://127.0.0.1:{free_port()}/packages"))
    assert reason.startswith(("the download failed", "no wheel for")), reason
