"""The Cloud Native Buildpack: buildpack.toml, and the real bin/detect and bin/build run the
way the CNB lifecycle runs them (tests/buildpack/cnb_lifecycle.py), on fixture apps."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import traffic_duplicator
from tests.buildpack.cnb_lifecycle import (
    LAYER,
    Lifecycle,
    cnb_buildpack,
    group_python,
    read_toml,
)
from tests.buildpack.conftest import Hooks, RuntimeServer, tree_digest
from tests.support import REPO_ROOT

RUNTIME = "python.tar.gz"
__all__ = ["cnb_buildpack"]


@pytest.fixture
def lifecycle(cnb_buildpack: Path, tmp_path: Path) -> Iterator[Lifecycle]:
    yield Lifecycle(tmp_path / "cnb", cnb_buildpack)


def _built(lifecycle: Lifecycle, fixture: str, runtime_url: str | None) -> None:
    lifecycle.copy_app(fixture)
    if runtime_url is not None:
        lifecycle.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_url)
    result = lifecycle.build()
    assert result.returncode == 0, result.output


# buildpack.toml


def test_buildpack_toml_declares_api_0_10_and_heroku_targets() -> None:
    descriptor = read_toml(REPO_ROOT / "buildpack.toml")

    assert descriptor["api"] == "0.10"
    assert descriptor["buildpack"]["id"] == "traffic-duplicator/traffic-duplicator"
    assert descriptor["buildpack"]["version"] == traffic_duplicator.__version__
    targets = {
        (target["os"], target["arch"], distro["name"], distro["version"])
        for target in descriptor["targets"]
        for distro in target["distros"]
    }
    assert targets == {
        ("linux", arch, "ubuntu", version)
        for arch in ("amd64", "arm64")
        for version in ("22.04", "24.04", "26.04")
    }


# bin/detect


@pytest.mark.parametrize("fixture", ["rails", "node", "python"])
def test_detect_passes_an_app_with_gor_options_and_writes_no_plan(
    lifecycle: Lifecycle, fixture: str
) -> None:
    lifecycle.copy_app(fixture)

    result = lifecycle.detect()

    assert result.returncode == 0, result.output
    assert "Traffic Duplicator (config/gor.options)" in result.stdout
    assert (lifecycle.root / "plan.toml").read_text() == ""


def test_detect_fails_with_100_and_the_classic_line_without_gor_options(
    lifecycle: Lifecycle, hooks: Hooks
) -> None:
    lifecycle.copy_app("no-options")

    result = lifecycle.detect()

    assert result.returncode == 100, result.output
    classic = hooks.detect(hooks.app("no-options"))
    assert classic.returncode == 1
    assert result.stderr == classic.stderr
    assert "config/gor.options not found" in result.stderr


def test_detect_follows_traffic_duplicator_options_from_the_platform_env(
    lifecycle: Lifecycle,
) -> None:
    lifecycle.copy_app("no-options")
    lifecycle.set_config("TRAFFIC_DUPLICATOR_OPTIONS", "config/mirror.options")

    missing = lifecycle.detect()
    (lifecycle.app / "config").mkdir()
    (lifecycle.app / "config" / "mirror.options").write_text("--output-http http://a.test\n")
    found = lifecycle.detect()

    assert missing.returncode == 100
    assert "config/mirror.options (named by TRAFFIC_DUPLICATOR_OPTIONS) not found" in (
        missing.stderr
    )
    assert found.returncode == 0, found.output
    assert "Traffic Duplicator (config/mirror.options)" in found.stdout


def test_detect_takes_an_absolute_options_path_under_the_app_dir_as_the_apps(
    lifecycle: Lifecycle,
) -> None:
    # The app runs where it is built (/workspace on a CNB platform).
    lifecycle.copy_app("node")
    lifecycle.set_config("TRAFFIC_DUPLICATOR_OPTIONS", f"{lifecycle.app}/config/gor.options")

    result = lifecycle.detect()

    assert result.returncode == 0, result.output
    assert "Traffic Duplicator (config/gor.options)" in result.stdout


def test_the_classic_detect_is_unchanged_without_the_cnb_variables(hooks: Hooks) -> None:
    # Heroku's classic build passes BUILD_DIR only, and sets no CNB_* variable.
    result = hooks.detect(hooks.app("rails"))

    assert (result.returncode, result.stdout, result.stderr) == (0, "Traffic Duplicator\n", "")


# bin/build


@pytest.mark.parametrize("fixture", ["rails", "node"])
def test_build_contributes_a_cached_launch_layer_with_launcher_package_and_python(
    lifecycle: Lifecycle, runtime_server: RuntimeServer, fixture: str
) -> None:
    lifecycle.copy_app(fixture)
    lifecycle.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))
    app_before = tree_digest(lifecycle.app)
    buildpack_before = tree_digest(lifecycle.buildpack)
    before = runtime_server.count(RUNTIME)

    result = lifecycle.build()

    assert result.returncode == 0, result.output
    assert runtime_server.count(RUNTIME) == before + 1
    layer = lifecycle.layer
    toml = read_toml(lifecycle.layers / f"{LAYER}.toml")
    assert toml["types"] == {"launch": True, "build": False, "cache": True}
    assert toml["metadata"]["python_url"] == runtime_server.url(RUNTIME)
    assert re.fullmatch(r"3\.\d+\.\d+", toml["metadata"]["python_version"])
    assert toml["metadata"]["package_version"] == traffic_duplicator.__version__
    launcher = layer / "bin" / "start-traffic-duplicator"
    assert launcher.read_bytes() == (REPO_ROOT / "bin" / "start-traffic-duplicator").read_bytes()
    assert launcher.stat().st_mode & 0o111
    assert (layer / "lib" / "traffic_duplicator" / "__init__.py").is_file()
    assert (layer / "python" / "bin" / "python3").is_file()
    # Only the launcher is on PATH at launch: the runtime is not in the layer's bin/.
    assert sorted(p.name for p in (layer / "bin").iterdir()) == ["start-traffic-duplicator"]
    assert (layer / "env.launch" / "TRAFFIC_DUPLICATOR_HOME.default").read_text() == str(layer)
    # Nothing else in the layers dir (no scratch left), nothing written to the app or the
    # buildpack, and no launch.toml: the Procfile's processes are heroku/procfile's.
    assert sorted(p.name for p in lifecycle.layers.iterdir()) == [LAYER, f"{LAYER}.toml"]
    assert tree_digest(lifecycle.app) == app_before
    assert tree_digest(lifecycle.buildpack) == buildpack_before
    out = result.stdout
    assert "-----> Installing traffic-duplicator into the traffic-duplicator layer\n" in out
    assert "-----> Choosing the Python for traffic-duplicator (target: ubuntu 24.04 " in out
    assert "-----> Validating config/gor.options\n" in out
    assert "-----> traffic-duplicator is ready\n" in out
    for line in out.splitlines():
        assert line.startswith(("-----> ", "       ")), line


def test_rebuild_reuses_the_cached_runtime_by_its_metadata(
    lifecycle: Lifecycle, runtime_server: RuntimeServer
) -> None:
    _built(lifecycle, "rails", runtime_server.url(RUNTIME))
    python_before = tree_digest(lifecycle.layer / "python")
    requests = runtime_server.count(RUNTIME)

    lifecycle.restore_for_rebuild("rails")
    assert "types" not in read_toml(lifecycle.layers / f"{LAYER}.toml")
    again = lifecycle.build()

    assert again.returncode == 0, again.output
    assert runtime_server.count(RUNTIME) == requests
    assert "       Using the cached Python 3." in again.stdout
    assert "Downloading" not in again.stdout
    assert "Installing Python" not in again.stdout
    assert tree_digest(lifecycle.layer / "python") == python_before
    assert read_toml(lifecycle.layers / f"{LAYER}.toml")["types"]["launch"] is True


def test_rebuild_with_another_runtime_archive_installs_it(
    lifecycle: Lifecycle, runtime_server: RuntimeServer, tmp_path: Path
) -> None:
    _built(lifecycle, "node", runtime_server.url(RUNTIME))
    lifecycle.restore_for_rebuild("node")
    other = runtime_server.url(RUNTIME) + "?v=2"
    lifecycle.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", other)

    again = lifecycle.build()

    assert again.returncode == 0, again.output
    assert (
        "       Installing the Python runtime from TRAFFIC_DUPLICATOR_PYTHON_URL\n" in again.stdout
    )
    assert f"       Downloading {other}\n" in again.stdout
    assert read_toml(lifecycle.layers / f"{LAYER}.toml")["metadata"]["python_url"] == other


def test_a_password_in_the_runtime_url_stays_out_of_the_output_and_the_layer(
    lifecycle: Lifecycle, runtime_server: RuntimeServer
) -> None:
    # Layer metadata becomes part of the image's labels.
    url = runtime_server.url(RUNTIME).replace("://", "://deploy:hunter2@", 1)
    masked = url.replace("hunter2", "***")

    lifecycle.copy_app("node")
    lifecycle.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", url)
    result = lifecycle.build()

    assert result.returncode == 0, result.output
    assert "hunter2" not in result.output
    assert f"       Downloading {masked}\n" in result.stdout
    assert read_toml(lifecycle.layers / f"{LAYER}.toml")["metadata"]["python_url"] == masked
    lifecycle.restore_for_rebuild("node")
    again = lifecycle.build()
    assert again.returncode == 0, again.output
    assert "Installing Python" not in again.stdout  # the same archive: the layer is reused


def test_python_app_reuses_the_groups_python_and_installs_none(
    lifecycle: Lifecycle, runtime_server: RuntimeServer
) -> None:
    lifecycle.copy_app("python")
    python = group_python(lifecycle)
    lifecycle.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))
    before = len(runtime_server.requests)

    result = lifecycle.build()

    assert result.returncode == 0, result.output
    assert len(runtime_server.requests) == before
    assert not (lifecycle.layer / "python").exists()
    assert "       Using the group's Python 3." in result.stdout
    assert "(heroku_python/python/bin/python3); no download needed\n" in result.stdout
    # The launcher finds that Python on PATH at launch: no setting points at it.
    assert [p.name for p in (lifecycle.layer / "env.launch").iterdir()] == [
        "TRAFFIC_DUPLICATOR_HOME.default"
    ]
    assert python.is_file()
    assert read_toml(lifecycle.layers / f"{LAYER}.toml")["metadata"]["python_url"] == ""


def test_a_build_only_python_of_the_group_is_not_relied_on_at_launch(
    lifecycle: Lifecycle, runtime_server: RuntimeServer
) -> None:
    # A Python an earlier buildpack keeps for the build alone is not in the run image.
    lifecycle.copy_app("python")
    lifecycle.earlier_layer(
        "example/build-tools",
        "python",
        {"bin/python3": '#!/bin/sh\nexec /usr/bin/python3 "$@"\n'},
        launch=False,
    )
    lifecycle.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))

    result = lifecycle.build()

    assert result.returncode == 0, result.output
    assert (lifecycle.layer / "python" / "bin" / "python3").is_file()
    assert "Using the group's Python" not in result.stdout


def test_build_fails_on_a_bad_options_file_with_the_classic_message(
    lifecycle: Lifecycle, hooks: Hooks, runtime_server: RuntimeServer
) -> None:
    result, classic = lifecycle.build_with_classic(
        hooks, "broken-options", {"TRAFFIC_DUPLICATOR_PYTHON_URL": runtime_server.url(RUNTIME)}
    )

    assert result.returncode == 1, result.output
    assert classic.returncode == 1
    assert result.stderr == classic.stderr
    assert " !     Error: config/gor.options is not valid" in result.stderr
    assert "line 3" in result.stderr


def test_build_fails_when_the_named_options_file_is_missing(
    lifecycle: Lifecycle, hooks: Hooks
) -> None:
    result, classic = lifecycle.build_with_classic(
        hooks, "node", {"TRAFFIC_DUPLICATOR_OPTIONS": "config/missing.options"}
    )

    assert result.returncode == 1, result.output
    assert result.stderr == classic.stderr
    assert " !     Error: config/missing.options not found" in result.stderr


def test_arm64_on_ubuntu_22_04_without_a_group_python_says_there_is_no_runtime(
    lifecycle: Lifecycle,
) -> None:
    lifecycle.copy_app("node")
    lifecycle.distro_version = "22.04"

    result = lifecycle.build(CNB_TARGET_ARCH="arm64")

    assert result.returncode == 1, result.output
    assert (
        " !     Error: no Python runtime archive exists for this target (ubuntu 22.04 arm64).\n"
        in (result.stderr)
    )
    assert "List heroku/python before this buildpack in project.toml." in result.stderr


def test_build_refuses_to_run_outside_the_lifecycle(cnb_buildpack: Path, tmp_path: Path) -> None:
    hooks = Hooks(cnb_buildpack, tmp_path)
    app = hooks.app("node")

    result = hooks.run([str(cnb_buildpack / "bin" / "build")], hooks.env(app, None))

    assert result.returncode == 1
    assert "bin/build is the Cloud Native Buildpack build" in result.stderr


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ('[[io.buildpacks.group]]\nid = "heroku/ruby"\n', "project.toml lists the Ruby buildpack"),
        (
            '[[io.buildpacks.group]]\nid = "heroku/nodejs"\n',
            "Warning: em-proxy is in Gemfile.lock, but project.toml lists no Ruby buildpack.",
        ),
    ],
)
def test_em_proxy_is_checked_against_the_project_descriptors_group(
    lifecycle: Lifecycle, runtime_server: RuntimeServer, group: str, expected: str
) -> None:
    # A CNB build reads the group from project.toml, never Cedar's .buildpacks or app.json.
    lifecycle.copy_app("rails")
    (lifecycle.app / "project.toml").write_text(f'[_]\nschema-version = "0.2"\n\n{group}')
    (lifecycle.app / ".buildpacks").write_text("heroku/ruby\n")
    lifecycle.set_config("TRAFFIC_DUPLICATOR_PYTHON_URL", runtime_server.url(RUNTIME))
    result = lifecycle.build()
    assert result.returncode == 0, result.output
    assert expected in result.output
    assert "heroku buildpacks" not in result.output
