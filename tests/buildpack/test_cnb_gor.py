"""gor and the engine decision in the Cloud Native Buildpack's build, as in bin/compile.

The CNB bin/build runs the same lib/gor.sh steps as the classic build, with its launch layer
standing in for the slug's .traffic-duplicator/: gor::select puts a gor in
<layer>/vendor/gor/gor (the buildpack's, or GoReplay's release when
TRAFFIC_DUPLICATOR_GOR_VERSION asks; never in the app, which the build leaves as it is),
and gor::choose_engines prints the decision the launched app will log, fails the build where
it would refuse to start, and keeps the decision in <layer>/engines.checked. The release
comes from the local file server tests/buildpack/test_gor_download.py uses, and its archive
is kept between builds in a cache-only layer, <layers>/gor-cache.

Each test builds with the emulated lifecycle (tests/buildpack/cnb_lifecycle.py) and, where
the point is what the app does at launch, starts the web process from the layers alone.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.buildpack.cnb_lifecycle import (
    LAYER,
    MIRRORED,
    Lifecycle,
    cnb_buildpack,
    dpkg_arch,
    read_toml,
    tools_dir,
)
from tests.buildpack.conftest import (
    Hooks,
    RuntimeServer,
    _copy_buildpack,
    tree_digest,
    write_fake_gor,
)
from tests.buildpack.test_cnb_launch import _python_group
from tests.buildpack.test_gor_download import (
    ARCHIVE,
    RELEASE_SHA256,
    STAND_IN_GOR,
    release_server,
)
from tests.support import REPO_ROOT, RecordingServer, free_port_block, running
from tests.wrapper.harness import parse_logfmt

__all__ = ["cnb_buildpack", "release_server"]

RUNTIME = "python.tar.gz"
GOR_CACHE = "gor-cache"
LAUNCH_TIMEOUT = 60.0
VERSION, URL, SHA256 = (f"TRAFFIC_DUPLICATOR_GOR_{name}" for name in ("VERSION", "URL", "SHA256"))


@pytest.fixture
def lifecycle(cnb_buildpack: Path, tmp_path: Path) -> Iterator[Lifecycle]:
    yield Lifecycle(tmp_path / "cnb", cnb_buildpack)


def _node_app(lifecycle: Lifecycle, runtime: RuntimeServer) -> None:
    """The node fixture (no Gemfile.lock), with the layer's own Python from the test server."""
    lifecycle.copy_app("node")
    lifecycle.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime.url(RUNTIME))


def _ask_for_gor(lifecycle: Lifecycle, server: RuntimeServer, **config: str) -> None:
    settings = {
        VERSION: "1.3.3",
        URL: server.url(ARCHIVE),
        SHA256: RELEASE_SHA256,
        **config,
    }
    for name, value in settings.items():
        lifecycle.set_config(name, value)


def _engine_events(text: str, prefix: str = "") -> list[dict[str, Any]]:
    """The at=engine lines of a build's stdout or of a launched wrapper's log."""
    lines = [line.strip().removeprefix(prefix) for line in text.splitlines()]
    return [parse_logfmt(line) for line in lines if line.startswith("at=engine ")]


def _one_error(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if line.startswith(" !     "))


def _launch_at_once(lifecycle: Lifecycle, tools: Path, **env: str) -> tuple[int, str]:
    """Starts `start-traffic-duplicator true` from the layers alone (PATH: the layers' bin/
    and `tools`), as the launcher runs a Procfile line (`bash -c`); the app exits at once.
    Its status and output."""
    (lifecycle.app / "Procfile").write_text("web: start-traffic-duplicator true\n")
    launch_env = lifecycle.launch_env(str(tools), PORT=str(free_port_block(3)), **env)
    log = lifecycle.root / "launch.log"
    with (
        log.open("wb") as output,
        running(
            lifecycle.web_argv(launch_env),
            env=launch_env,
            cwd=lifecycle.app,
            stdout=output,
            stderr=subprocess.STDOUT,
        ) as web,
    ):
        status = web.wait(LAUNCH_TIMEOUT)
    return status, log.read_text()


# TRAFFIC_DUPLICATOR_GOR_VERSION


def test_the_release_goes_into_the_layer_and_the_web_process_mirrors_through_it(
    lifecycle: Lifecycle, release_server: RuntimeServer, tmp_path: Path
) -> None:
    lifecycle.copy_app("python")
    _python_group(lifecycle)
    _ask_for_gor(lifecycle, release_server)
    downloads = release_server.count(ARCHIVE)

    with RecordingServer() as destination:
        (lifecycle.app / "config" / "gor.options").write_text(
            f"--output-http http://127.0.0.1:{destination.port}\n"
        )
        app_before = tree_digest(lifecycle.app)
        built = lifecycle.build()
        assert built.returncode == 0, built.output
        # The build leaves the app as it is (the app itself may write at run time).
        assert tree_digest(lifecycle.app) == app_before

        port = free_port_block(3)
        env = lifecycle.launch_env(
            str(tools_dir(tmp_path, "bash", "dirname", "readlink")), PORT=str(port)
        )
        log = tmp_path / "web.log"
        answers, mirrored = lifecycle.serve_and_mirror(env, port, destination, log)

    assert answers == [(200, b"ok"), (200, b"ok")], log.read_text()
    assert mirrored == MIRRORED
    # The build downloaded it once into the layer, where the wrapper looks, and said so.
    assert release_server.count(ARCHIVE) == downloads + 1
    gor = lifecycle.layer / "vendor" / "gor" / "gor"
    assert gor.read_text() == STAND_IN_GOR
    assert gor.stat().st_mode & 0o777 == 0o755
    out = built.stdout
    assert "-----> Looking for a gor binary\n" in out
    assert (
        f"       Downloading GoReplay 1.3.3 for {dpkg_arch()}: {release_server.url(ARCHIVE)}\n"
        in out
    )
    assert f"       Installed gor 1.3.3 (sha256 {RELEASE_SHA256[:16]}...)\n" in out
    assert "-----> Choosing the engines (the dyno logs the same at=engine lines)\n" in out
    reason = f"the buildpack's vendor/gor/gor {gor} (gor 1.3.3) has no --input-http"
    assert f'       at=engine process=replayer engine="gor --input-tcp" reason="{reason}' in out
    assert f"       Replayer: gor 1.3.3 ({gor}), fed GoReplay framing on --input-tcp\n" in out
    # The launched web process logged the same decision, and ran that gor.
    text = log.read_text()
    assert _engine_events(text, "traffic_duplicator ") == _engine_events(out), text
    assert 'traffic_duplicator at=engine process=replayer engine="gor --input-tcp" ' in text
    assert f'command="{gor} --input-tcp 127.0.0.1:' in text
    # The record is the layer's.
    assert "uses_gor=yes\n" in (lifecycle.layer / "engines.checked").read_text()


def test_a_rebuild_takes_the_archive_from_the_gor_cache_layer(
    lifecycle: Lifecycle, runtime_server: RuntimeServer, release_server: RuntimeServer
) -> None:
    _node_app(lifecycle, runtime_server)
    _ask_for_gor(lifecycle, release_server)
    first = lifecycle.build()
    assert first.returncode == 0, first.output
    downloads = release_server.count(ARCHIVE)
    cache = lifecycle.layers / GOR_CACHE
    toml = read_toml(lifecycle.layers / f"{GOR_CACHE}.toml")
    assert toml == {
        "types": {"launch": False, "build": False, "cache": True},
        "metadata": {"gor_archive_sha256": RELEASE_SHA256},
    }
    archives = cache / "traffic-duplicator" / "gor-archives"
    assert [p.name for p in archives.iterdir()] == [f"{RELEASE_SHA256}.tar.gz"]
    # Only the two layers and their TOML: no scratch left in the layers or the cache.
    assert sorted(p.name for p in lifecycle.layers.iterdir()) == sorted(
        [LAYER, f"{LAYER}.toml", GOR_CACHE, f"{GOR_CACHE}.toml"]
    )
    assert sorted(p.name for p in (cache / "traffic-duplicator").iterdir()) == ["gor-archives"]

    lifecycle.restore_for_rebuild("node")
    _ask_for_gor(lifecycle, release_server)
    again = lifecycle.build()

    assert again.returncode == 0, again.output
    assert release_server.count(ARCHIVE) == downloads
    assert f"       Using the cached GoReplay 1.3.3 archive ({ARCHIVE})\n" in again.stdout
    assert (lifecycle.layer / "vendor" / "gor" / "gor").read_text() == STAND_IN_GOR
    assert read_toml(lifecycle.layers / f"{GOR_CACHE}.toml")["types"]["cache"] is True
    assert 'engine="gor --input-tcp"' in again.stdout


def test_without_the_variable_a_rebuild_drops_the_gor_and_its_cache(
    lifecycle: Lifecycle, runtime_server: RuntimeServer, release_server: RuntimeServer
) -> None:
    _node_app(lifecycle, runtime_server)
    _ask_for_gor(lifecycle, release_server)
    assert lifecycle.build().returncode == 0
    downloads = release_server.count(ARCHIVE)

    lifecycle.restore_for_rebuild("node")
    for name in (VERSION, URL, SHA256):
        (lifecycle.platform / "env" / name).unlink()
    again = lifecycle.build()

    assert again.returncode == 0, again.output
    assert release_server.count(ARCHIVE) == downloads
    assert not (lifecycle.layer / "vendor" / "gor").exists()
    assert sorted(p.name for p in lifecycle.layers.iterdir()) == [LAYER, f"{LAYER}.toml"]
    assert 'at=engine process=replayer engine=builtin reason="no gor binary found' in again.stdout


def test_a_wrong_checksum_fails_the_build_with_the_classic_line(
    lifecycle: Lifecycle,
    hooks: Hooks,
    runtime_server: RuntimeServer,
    release_server: RuntimeServer,
) -> None:
    config = {
        "TRAFFIC_DUPLICATOR_PYTHON_URL": runtime_server.url(RUNTIME),
        VERSION: "1.3.3",
        URL: release_server.url(ARCHIVE),
        SHA256: "0" * 64,
    }

    built, classic = lifecycle.build_with_classic(hooks, "node", config)

    assert built.returncode == 1, built.output
    assert _one_error(built.stderr) == (
        " !     Error: checksum mismatch for the GoReplay download: expected sha256 "
        f"{'0' * 64}, got {RELEASE_SHA256}."
    )
    assert classic.returncode == 1
    assert built.stderr == classic.stderr
    assert "failed unexpectedly" not in built.stderr
    assert not (lifecycle.layer / "vendor" / "gor" / "gor").exists()
    assert not (lifecycle.layers / f"{GOR_CACHE}.toml").exists()
    assert not (lifecycle.layer / "engines.checked").exists()


# The other gor sources, and the decision


def test_the_apps_own_gor_wins_and_nothing_is_downloaded(
    lifecycle: Lifecycle, runtime_server: RuntimeServer, release_server: RuntimeServer
) -> None:
    _node_app(lifecycle, runtime_server)
    write_fake_gor(lifecycle.app / "bin" / "gor", "0.14.1")
    _ask_for_gor(lifecycle, release_server)
    downloads = release_server.count(ARCHIVE)

    built = lifecycle.build()

    assert built.returncode == 0, built.output
    assert release_server.count(ARCHIVE) == downloads
    assert "The app's bin/gor wins over TRAFFIC_DUPLICATOR_GOR_VERSION: nothing is downloaded" in (
        built.stdout
    )
    assert f"the app's bin/gor {lifecycle.app}/bin/gor (gor 0.14.1) lists --input-http" in (
        built.stdout
    )
    assert not (lifecycle.layer / "vendor").exists()
    assert sorted(p.name for p in lifecycle.layers.iterdir()) == [LAYER, f"{LAYER}.toml"]


def test_the_buildpacks_gor_goes_into_the_layer_not_the_app(
    runtime_server: RuntimeServer, tmp_path: Path
) -> None:
    buildpack = _copy_buildpack(tmp_path / "buildpack-with-gor")
    (buildpack / "buildpack.toml").write_bytes((REPO_ROOT / "buildpack.toml").read_bytes())
    write_fake_gor(buildpack / "vendor" / "gor" / "gor", "0.14.1")
    lifecycle = Lifecycle(tmp_path / "cnb", buildpack)
    _node_app(lifecycle, runtime_server)
    app_before = tree_digest(lifecycle.app)

    built = lifecycle.build()

    assert built.returncode == 0, built.output
    gor = lifecycle.layer / "vendor" / "gor" / "gor"
    assert gor.read_bytes() == (buildpack / "vendor" / "gor" / "gor").read_bytes()
    assert gor.stat().st_mode & 0o777 == 0o755
    assert "       Copied the buildpack's vendor/gor/gor to the layer's vendor/gor/gor\n" in (
        built.stdout
    )
    assert f"the buildpack's vendor/gor/gor {gor} (gor 0.14.1) lists --input-http" in built.stdout
    assert tree_digest(lifecycle.app) == app_before


def test_where_the_app_would_refuse_to_start_the_build_fails_as_the_classic_one(
    lifecycle: Lifecycle, hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    config = {
        "TRAFFIC_DUPLICATOR_PYTHON_URL": runtime_server.url(RUNTIME),
        "TRAFFIC_DUPLICATOR_REPLAYER": "gor",
    }

    built, classic = lifecycle.build_with_classic(hooks, "node", config)

    assert built.returncode == 1, built.output
    assert classic.returncode == 1, classic.output
    # The same line, with the paths the app has at launch: /workspace and the layer.
    expected = (
        _one_error(classic.stderr)
        .replace("/app/.traffic-duplicator", str(lifecycle.layer))
        .replace("/app/", f"{lifecycle.app}/")
    )
    assert _one_error(built.stderr) == expected
    assert expected.startswith(
        " !     Error: the dyno would refuse to start: TRAFFIC_DUPLICATOR_REPLAYER=gor but no gor "
        f"binary found (looked at {lifecycle.app}/bin/gor, {lifecycle.layer}/vendor/gor/gor)"
    )


def test_the_launched_wrapper_reads_the_record_in_the_layer(
    lifecycle: Lifecycle, runtime_server: RuntimeServer, tmp_path: Path
) -> None:
    _node_app(lifecycle, runtime_server)
    built = lifecycle.build()
    assert built.returncode == 0, built.output
    assert (lifecycle.layer / "engines.checked").is_file()
    assert not (lifecycle.app / ".traffic-duplicator").exists()

    tools = tools_dir(tmp_path, "bash", "dirname", "readlink", "true")

    # A config var changed after the build (a new release on Fir builds nothing).
    status, text = _launch_at_once(lifecycle, tools, TRAFFIC_DUPLICATOR_REPLAYER="gor")

    assert status == 0, text
    assert _engine_events(text, "traffic_duplicator ") == _engine_events(built.stdout), text
    assert (
        'action="running the engines the build checked (TRAFFIC_DUPLICATOR_REPLAYER=(unset)); '
        'fix or unset TRAFFIC_DUPLICATOR_REPLAYER, or build again"'
    ) in text
    assert "traffic_duplicator at=engine process=replayer engine=builtin " in text

    # Without the layer's record the same mistake stops the start, as in a local run.
    (lifecycle.layer / "engines.checked").unlink()
    status, text = _launch_at_once(lifecycle, tools, TRAFFIC_DUPLICATOR_REPLAYER="gor")
    assert status == 2, text
    assert "start-traffic-duplicator: error: TRAFFIC_DUPLICATOR_REPLAYER=gor but no gor" in text
