"""gor provided by the build: TRAFFIC_DUPLICATOR_GOR_VERSION, _URL and _SHA256.

A local file server on 127.0.0.1 serves an archive laid out like a GoReplay release
(`gor_1.3.3_x64.tar.gz`: a gzipped tar with the `gor` binary alone at its top level), whose
`gor` is a shell-script stand-in: it answers --help as gor 1.3.3 does and otherwise runs the
built-in replayer. The real bin/compile fetches it, checks it and unpacks it where the
wrapper looks (.traffic-duplicator/vendor/gor/gor), and the dyno's at=engine line names it.
"""

from __future__ import annotations

import hashlib
import io
import platform
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.buildpack.conftest import (
    App,
    Hooks,
    RuntimeServer,
    gzip_bytes,
    write_fake_gor,
)
from tests.buildpack.test_engine_agreement import start_dyno
from tests.support import REPO_ROOT

STACK = "heroku-22"
ARCHIVE = "gor_1.3.3_x64.tar.gz"
STAND_IN_GOR = """#!/bin/sh
# A stand-in for GoReplay 1.3.3 in the build's tests.
case "$1" in -h|-help|--help)
  printf 'Gor is a simple http traffic replication tool written in Go.\\n' >&2
  printf 'Current Version: 1.3.3\\n\\n  -input-tcp value\\n  -output-http value\\n' >&2
  exit 2 ;;
esac
exec python3 -m traffic_duplicator.replay "$@"
"""
VENDOR_GOR = Path(".traffic-duplicator") / "vendor" / "gor" / "gor"


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return gzip_bytes(buffer.getvalue())


RELEASE = _tar_gz({"gor": STAND_IN_GOR.encode()})
RELEASE_SHA256 = hashlib.sha256(RELEASE).hexdigest()


@pytest.fixture(scope="module")
def release_server() -> Iterator[RuntimeServer]:
    files = {
        ARCHIVE: RELEASE,
        "empty.tar.gz": _tar_gz({"README": b"no binary here\n"}),
    }
    server = RuntimeServer(files).start()
    try:
        yield server
    finally:
        server.stop()


def _app(hooks: Hooks, server: RuntimeServer, name: str = "app", **config: str) -> App:
    app = hooks.app("dyno", name=name)
    (app.build_dir / "Procfile").write_text("web: start-traffic-duplicator true\n")
    settings = {
        "TRAFFIC_DUPLICATOR_GOR_VERSION": "1.3.3",
        "TRAFFIC_DUPLICATOR_GOR_URL": server.url(ARCHIVE),
        "TRAFFIC_DUPLICATOR_GOR_SHA256": RELEASE_SHA256,
        **config,
    }
    for key, value in settings.items():
        if value:
            app.set_config(key, value)
    return app


def _one_error(stderr: str) -> str:
    """The summary line of the build's error (the first ` !     ` line)."""
    return next(line for line in stderr.splitlines() if line.startswith(" !     "))


def test_the_release_is_fetched_checked_and_named_by_the_dyno(
    hooks: Hooks, release_server: RuntimeServer
) -> None:
    app = _app(hooks, release_server)
    before = release_server.count(ARCHIVE)

    built = hooks.compile(app, STACK)

    assert built.returncode == 0, built.output
    assert release_server.count(ARCHIVE) == before + 1
    installed = app.build_dir / VENDOR_GOR
    assert installed.read_text() == STAND_IN_GOR
    assert installed.stat().st_mode & 0o777 == 0o755
    assert f"       Downloading GoReplay 1.3.3 for amd64: {release_server.url(ARCHIVE)}\n" in (
        built.stdout
    )
    assert f"       Installed gor 1.3.3 (sha256 {RELEASE_SHA256[:16]}...)\n" in built.stdout
    assert (
        'at=engine process=replayer engine="gor --input-tcp" reason="the buildpack\'s '
        "vendor/gor/gor /app/.traffic-duplicator/vendor/gor/gor (gor 1.3.3) has no --input-http"
    ) in built.stdout
    assert "       Replayer: gor 1.3.3 (/app/.traffic-duplicator/vendor/gor/gor)," in built.stdout

    status, text = start_dyno(app, {})

    assert status == 0, text
    assert (
        'traffic_duplicator at=engine process=replayer engine="gor --input-tcp" '
        f"reason=\"the buildpack's vendor/gor/gor {installed} (gor 1.3.3) has no --input-http"
    ) in text
    assert f'command="{installed} --input-tcp 127.0.0.1:' in text


def test_a_later_build_uses_the_cached_archive(hooks: Hooks, release_server: RuntimeServer) -> None:
    app = _app(hooks, release_server)
    assert hooks.compile(app, STACK).returncode == 0
    downloads = release_server.count(ARCHIVE)

    # Heroku gives each build a fresh BUILD_DIR and the same CACHE_DIR.
    second = _app(hooks, release_server, name="second")
    second.cache_dir.rmdir()
    second.cache_dir.symlink_to(app.cache_dir)
    again = hooks.compile(second, STACK)

    assert again.returncode == 0, again.output
    assert release_server.count(ARCHIVE) == downloads
    assert f"       Using the cached GoReplay 1.3.3 archive ({ARCHIVE})\n" in again.stdout
    assert (second.build_dir / VENDOR_GOR).read_text() == STAND_IN_GOR


def test_a_wrong_checksum_fails_the_build_and_installs_nothing(
    hooks: Hooks, release_server: RuntimeServer
) -> None:
    app = _app(hooks, release_server, TRAFFIC_DUPLICATOR_GOR_SHA256="0" * 64)

    built = hooks.compile(app, STACK)

    assert built.returncode == 1
    assert _one_error(built.stderr) == (
        " !     Error: checksum mismatch for the GoReplay download: expected sha256 "
        f"{'0' * 64}, got {RELEASE_SHA256}."
    )
    assert not (app.build_dir / VENDOR_GOR).exists()
    assert not list((app.cache_dir / "traffic-duplicator" / "gor-archives").iterdir())


@pytest.mark.parametrize(
    ("config", "error"),
    [
        (
            {"TRAFFIC_DUPLICATOR_GOR_VERSION": "0.0.1", "TRAFFIC_DUPLICATOR_GOR_URL": "",
             "TRAFFIC_DUPLICATOR_GOR_SHA256": ""},
            "Error: TRAFFIC_DUPLICATOR_GOR_VERSION=0.0.1 is not a GoReplay version this buildpack "
            "knows.",
        ),
        (
            {"TRAFFIC_DUPLICATOR_GOR_URL": "{server}missing.tar.gz"},
            "Error: could not download GoReplay: the server answered HTTP 404.",
        ),
        (
            {"TRAFFIC_DUPLICATOR_GOR_SHA256": "not-a-checksum"},
            "Error: cannot check the GoReplay download: TRAFFIC_DUPLICATOR_GOR_SHA256 is not a "
            "sha256 (64 hexadecimal digits).",
        ),
        (
            {"TRAFFIC_DUPLICATOR_GOR_URL": "{server}empty.tar.gz",
             "TRAFFIC_DUPLICATOR_GOR_SHA256": "{empty}"},
            "Error: the GoReplay archive has no gor binary at its top level.",
        ),
    ],
    ids=["unknown-version", "download-failed", "bad-checksum-value", "no-gor-inside"],
)  # fmt: skip
def test_each_failure_has_its_own_line(
    hooks: Hooks, release_server: RuntimeServer, config: dict[str, str], error: str
) -> None:
    empty = hashlib.sha256(release_server.files["empty.tar.gz"]).hexdigest()
    resolved = {
        key: value.format(server=release_server.url(""), empty=empty)
        for key, value in config.items()
    }
    app = _app(hooks, release_server, **resolved)

    built = hooks.compile(app, STACK)

    assert built.returncode == 1, built.output
    assert _one_error(built.stderr) == f" !     {error}"
    assert not (app.build_dir / VENDOR_GOR).exists()


def test_a_pinned_version_without_a_published_checksum_asks_for_one(
    hooks: Hooks, release_server: RuntimeServer
) -> None:
    # 1.3.3's archive is known, its sha256 is not pinned (none is published): no download.
    app = _app(
        hooks, release_server, TRAFFIC_DUPLICATOR_GOR_URL="", TRAFFIC_DUPLICATOR_GOR_SHA256=""
    )
    if _debian_arch() != "amd64":
        pytest.skip("GoReplay 1.3.3 has an archive for amd64 only")

    built = hooks.compile(app, STACK)

    assert built.returncode == 1
    assert _one_error(built.stderr) == (
        " !     Error: cannot check the GoReplay download: no sha256 is pinned for GoReplay "
        "1.3.3 (amd64) in this buildpack."
    )
    assert " !          sha256sum gor_1.3.3_x64.tar.gz" in built.stderr


def _debian_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def _install_release(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """gor::install_release called as a Cloud Native Buildpack's bin/build would call it."""
    libs = " ".join(
        f'source "{REPO_ROOT}/lib/{name}.sh";' for name in ("output", "utils", "python", "gor")
    )
    return subprocess.run(
        ["bash", "-c", f'{libs} gor::install_release "$@"', "install", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "TRAFFIC_DUPLICATOR_CURL_RETRIES": "0"},
        cwd=tmp_path,
    )


def test_no_build_for_the_architecture(tmp_path: Path) -> None:
    done = _install_release(
        tmp_path,
        str(tmp_path / "layer" / "vendor" / "gor"),
        str(tmp_path / "cache"),
        "1.3.3",
        "arm64",
    )

    assert done.returncode == 1
    assert _one_error(done.stderr) == (
        " !     Error: GoReplay 1.3.3 has no Linux build for this architecture (arm64)."
    )


def test_the_function_a_cnb_calls_installs_into_its_layer(
    tmp_path: Path, release_server: RuntimeServer
) -> None:
    layer_gor = tmp_path / "layer" / "vendor" / "gor"
    done = _install_release(
        tmp_path, str(layer_gor), str(tmp_path / "cache"), "1.3.3", "arm64",
        release_server.url(ARCHIVE), RELEASE_SHA256,
    )  # fmt: skip

    # With URL and SHA256 given, they are the archive: the architecture is the caller's.
    assert done.returncode == 0, done.stdout + done.stderr
    assert (layer_gor / "gor").read_text() == STAND_IN_GOR
    assert (
        tmp_path / "cache" / "traffic-duplicator" / "gor-archives" / f"{RELEASE_SHA256}.tar.gz"
    ).exists()


def test_the_apps_own_gor_wins_and_nothing_is_downloaded(
    hooks: Hooks, release_server: RuntimeServer
) -> None:
    app = _app(hooks, release_server)
    write_fake_gor(app.build_dir / "bin" / "gor", "0.14.1")
    downloads = release_server.count(ARCHIVE)

    built = hooks.compile(app, STACK)

    assert built.returncode == 0, built.output
    assert release_server.count(ARCHIVE) == downloads
    assert "The app's bin/gor wins over TRAFFIC_DUPLICATOR_GOR_VERSION: nothing is downloaded" in (
        built.stdout
    )
    assert "the app's bin/gor /app/bin/gor (gor 0.14.1) lists --input-http" in built.stdout
    assert not (app.build_dir / VENDOR_GOR).exists()


def test_without_the_variable_nothing_is_downloaded_and_a_rebuild_drops_the_old_gor(
    hooks: Hooks, release_server: RuntimeServer
) -> None:
    app = _app(hooks, release_server)
    assert hooks.compile(app, STACK).returncode == 0
    for name in ("VERSION", "URL", "SHA256"):
        (app.env_dir / f"TRAFFIC_DUPLICATOR_GOR_{name}").unlink()
    downloads = release_server.count(ARCHIVE)

    again = hooks.compile(app, STACK)

    assert again.returncode == 0, again.output
    assert release_server.count(ARCHIVE) == downloads
    assert not (app.build_dir / VENDOR_GOR).exists()
    assert 'at=engine process=replayer engine=builtin reason="no gor binary found' in again.stdout


def test_a_cnb_asks_for_the_engine_decision_with_its_layer_as_home(
    tmp_path: Path, release_server: RuntimeServer
) -> None:
    app_dir, layer, env_dir = tmp_path / "workspace", tmp_path / "layer", tmp_path / "env"
    (app_dir / "config").mkdir(parents=True)
    (app_dir / "config" / "gor.options").write_text("--output-http http://staging\n")
    env_dir.mkdir()
    assert _install_release(
        tmp_path, str(layer / "vendor" / "gor"), str(tmp_path / "cache"), "1.3.3", "amd64",
        release_server.url(ARCHIVE), RELEASE_SHA256,
    ).returncode == 0  # fmt: skip
    libs = " ".join(
        f'source "{REPO_ROOT}/lib/{name}.sh";' for name in ("output", "utils", "python", "gor")
    )
    script = (
        f'{libs} gor::choose_engines "$@" && echo "available=$(gor::available)"'
        ' && echo "summary=${TD_GOR_DESCRIPTION}"'
    )
    done = subprocess.run(
        ["bash", "-c", script, "choose", str(app_dir), str(env_dir), "/usr/bin/python3",
         str(REPO_ROOT), str(layer), str(app_dir)],
        capture_output=True, text=True, timeout=60, check=False, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    gor = layer / "vendor" / "gor" / "gor"
    assert f"vendor/gor/gor {gor} (gor 1.3.3) has no --input-http" in done.stdout
    assert "available=yes\n" in done.stdout
    assert f"summary=gor 1.3.3 ({gor}), fed GoReplay framing on --input-tcp\n" in done.stdout
    assert (layer / "engines.checked").read_text().startswith("# Written by")


@pytest.mark.parametrize("archive", [ARCHIVE, "missing.tar.gz"], ids=["fetched", "failed"])
def test_a_password_in_the_url_never_reaches_the_build_output(
    hooks: Hooks, release_server: RuntimeServer, archive: str
) -> None:
    url = release_server.url(archive).replace("://", "://deploy:hunter2@", 1)
    app = _app(hooks, release_server, TRAFFIC_DUPLICATOR_GOR_URL=url)

    built = hooks.compile(app, STACK)

    assert built.returncode == (0 if archive == ARCHIVE else 1), built.output
    assert "hunter2" not in built.output
    assert f"://deploy:***@127.0.0.1:{release_server.port}/{archive}" in built.output
